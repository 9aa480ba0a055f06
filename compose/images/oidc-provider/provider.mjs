// A real OIDC provider (oidc-provider) standing in for Keycloak where Keycloak cannot run:
// the realm's users, roles, tier attribute, client and audience come from the same
// compose/keycloak/demo-realm.json Keycloak imports, and the URLs are Keycloak's
// (/realms/<realm>/.well-known/openid-configuration, .../protocol/openid-connect/certs and
// .../token), so compose/authz/config.yaml and the README's commands work unchanged.
// DEVELOPMENT ONLY: a password grant for the demo client, a signing key made at start.
//
//   node provider.mjs --realm demo-realm.json --public-url http://localhost:8180 --port 8080
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { exportJWK, generateKeyPair } from 'jose';
import Provider, { errors } from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    realm: { type: 'string', default: '/realm/demo-realm.json' },
    'public-url': { type: 'string', default: 'http://localhost:8180' },
    port: { type: 'string', default: '8080' },
  },
});

const realm = JSON.parse(readFileSync(args.realm, 'utf8'));
const prefix = `/realms/${realm.realm}`;
const issuer = `${args['public-url']}${prefix}`;
const client = realm.clients.find((c) => c.publicClient && c.directAccessGrantsEnabled);
const mapper = (type) => client.protocolMappers.find((m) => m.protocolMapper === type)?.config ?? {};
const audience = mapper('oidc-audience-mapper')['included.custom.audience'];
const tierMapper = mapper('oidc-usermodel-attribute-mapper');
const users = new Map(realm.users.filter((u) => u.enabled !== false).map((u) => [u.username, u]));
const lifetime = realm.accessTokenLifespan ?? 300;

// Keycloak's access-token claims, which the service's provider config reads.
function claimsOf(user) {
  const claims = {
    sub: user.username,
    preferred_username: user.username,
    email: user.email,
    realm_access: { roles: user.realmRoles ?? [] },
    azp: client.clientId,
    typ: 'Bearer',
  };
  const tier = user.attributes?.[tierMapper['user.attribute']]?.[0];
  if (tier !== undefined) claims[tierMapper['claim.name']] = tier;
  return claims;
}

const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const signingKey = { ...(await exportJWK(privateKey)), alg: 'RS256', use: 'sig', kid: 'compose-dev-1' };
const apiResource = {
  audience,
  scope: 'openid profile email',
  accessTokenTTL: lifetime,
  accessTokenFormat: 'jwt',
  jwt: { sign: { alg: 'RS256' } },
};

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: client.clientId,
      token_endpoint_auth_method: 'none',
      grant_types: ['password'],
      response_types: [],
      redirect_uris: [],
    },
  ],
  jwks: { keys: [signingKey] },
  routes: {
    jwks: '/protocol/openid-connect/certs',
    token: '/protocol/openid-connect/token',
    userinfo: '/protocol/openid-connect/userinfo',
    authorization: '/protocol/openid-connect/auth',
    end_session: '/protocol/openid-connect/logout',
  },
  features: {
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => audience,
      useGrantedResource: () => true,
      getResourceServerInfo: () => apiResource,
    },
  },
  formats: {
    customizers: {
      // The token's subject is the user the password grant authenticated.
      jwt(ctx, token, jwt) {
        const user = users.get(token.extra?.username);
        if (user) Object.assign(jwt.payload, claimsOf(user), { client_id: undefined });
      },
    },
  },
  extraTokenClaims: (ctx) => ({ username: ctx.oidc.params?.username }),
});
provider.proxy = true;

// Resource owner password credentials, as Keycloak's direct access grants (demo only).
provider.registerGrantType(
  'password',
  async (ctx) => {
    const { username, password } = ctx.oidc.params;
    const user = users.get(username);
    const valid = user?.credentials?.some((c) => c.type === 'password' && c.value === password);
    if (!valid) throw new errors.InvalidGrant('invalid user credentials');
    const token = new provider.ClientCredentials({ client: ctx.oidc.client, scope: 'openid' });
    token.resourceServer = new provider.ResourceServer(audience, apiResource);
    ctx.oidc.entity('ClientCredentials', token);
    const value = await token.save();
    ctx.body = {
      access_token: value,
      expires_in: token.expiration,
      token_type: 'Bearer',
      scope: token.scope,
    };
  },
  ['username', 'password', 'scope'],
);

const handle = provider.callback();
http
  .createServer((req, res) => {
    if (req.url === '/health') {
      res.writeHead(200).end('ok');
      return;
    }
    if (!req.url.startsWith(prefix)) {
      res.writeHead(404).end();
      return;
    }
    // Mounted under /realms/<realm>, as Keycloak serves it.
    req.originalUrl = req.url;
    req.url = req.url.slice(prefix.length) || '/';
    handle(req, res);
  })
  .listen(Number(args.port), '0.0.0.0', () => {
    console.log(`oidc-provider for realm ${realm.realm}: issuer ${issuer}, users ${[...users.keys()].join(', ')}`);
  });
