// The real authorization server of the integration and end-to-end tests: oidc-provider (a
// certified OpenID provider) on 127.0.0.1, issuing what issue 17's checks verify.
//
//   node issuer.mjs --audience https://api.test --opaque-audience https://opaque.test
//
// It listens on a port the kernel picks and prints one JSON line {"issuer": URL} when ready;
// the pytest fixture (tests/support/authorization_server.py) reads it, then waits for the
// discovery document. TEST ONLY: fixed client secrets, an in-memory store, keys made at start.
//
// What it issues (client_credentials unless said otherwise, `resource` picks the audience):
// - `service`: a Bearer JWT access token for --audience.
// - `dpop-client`: DPoP-bound JWTs (cnf.jkt of the proof's key); the library checks the proof
//   at the token endpoint (htm, htu, iat, jti replay; nonces when --dpop-nonce is given).
// - `mtls-client`: certificate-bound JWTs (cnf.x5t#S256). Nothing terminates TLS in front of
//   this plain-HTTP server, so the client certificate arrives as the URL-encoded PEM in the
//   `x-client-cert` header, as a TLS-terminating proxy (Envoy, nginx) would forward it. The
//   header is trusted because only the tests reach this loopback port.
// - any client with resource=--opaque-audience: an opaque access token, answered at the
//   introspection endpoint and revocable at the revocation endpoint (both RFC 7662/7009,
//   callable by any client with its secret, e.g. `resource-server`).
// - grant `urn:authz-service:test:login` (params username, acr, auth_time): a user's access
//   token carrying sub, acr and auth_time. It stands in for the authorization-code login whose
//   interaction would establish acr and auth_time (RFC 9470 step-up): the tests say how and
//   when the user signed in, the provider issues and signs the token as for any grant.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import http from 'node:http';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    audience: { type: 'string', default: 'https://api.authz-service.test' },
    'opaque-audience': { type: 'string', default: 'https://opaque.authz-service.test' },
    scope: { type: 'string', default: 'orders:read orders:write' },
    'token-ttl': { type: 'string', default: '300' },
    // Ask clients for a server nonce in every DPoP proof at the token endpoint (RFC 9449 §8).
    'dpop-nonce': { type: 'boolean', default: false },
  },
});

const LOGIN_GRANT = 'urn:authz-service:test:login';
const ttl = Number(args['token-ttl']);
const resourceServers = new Map([
  [args.audience, { accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } }],
  [args['opaque-audience'], { accessTokenFormat: 'opaque' }],
]);

function client(clientId, metadata = {}) {
  return {
    client_id: clientId,
    client_secret: `${clientId}-secret`,
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials', LOGIN_GRANT],
    response_types: [],
    redirect_uris: [],
    scope: args.scope,
    ...metadata,
  };
}

const signingKey = {
  ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }),
  alg: 'RS256',
  use: 'sig',
  kid: `test-issuer-${randomBytes(4).toString('hex')}`,
};

// The PEM certificate a TLS terminator would have forwarded (see the header comment).
function forwardedCertificate(ctx) {
  const header = ctx.get('x-client-cert');
  return header ? decodeURIComponent(header) : undefined;
}

function configuration() {
  return {
    clients: [
      client('service'),
      client('resource-server'),
      client('dpop-client', { dpop_bound_access_tokens: true }),
      client('mtls-client', { tls_client_certificate_bound_access_tokens: true }),
    ],
    jwks: { keys: [signingKey] },
    scopes: ['openid', ...args.scope.split(' ')],
    ttl: { ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL ?? ttl },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      dPoP: {
        enabled: true,
        nonceSecret: randomBytes(32),
        requireNonce: () => args['dpop-nonce'],
      },
      mTLS: {
        enabled: true,
        certificateBoundAccessTokens: true,
        getCertificate: forwardedCertificate,
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => args.audience,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource) => {
          const server = resourceServers.get(resource);
          if (!server) throw new errors.InvalidTarget(`unknown resource ${resource}`);
          return { audience: resource, scope: args.scope, accessTokenTTL: ttl, ...server };
        },
      },
    },
    // The login grant's user facts travel as extra claims (JWT payload, introspection answer).
    extraTokenClaims: (ctx, token) => token.extra,
    formats: {
      customizers: {
        jwt(ctx, token, jwt) {
          // A user's token names the user, not the client, as its subject.
          if (token.extra?.sub) jwt.payload.sub = token.extra.sub;
        },
      },
    },
  };
}

function loginGrant(provider) {
  return async (ctx) => {
    const { username, acr, auth_time: authTime, resource = args.audience } = ctx.oidc.params;
    if (!username) throw new errors.InvalidRequest('missing username');
    const resourceInfo = resourceServers.get(resource);
    if (!resourceInfo) throw new errors.InvalidTarget(`unknown resource ${resource}`);
    const token = new provider.ClientCredentials({ client: ctx.oidc.client, scope: args.scope });
    token.resourceServer = new provider.ResourceServer(resource, {
      audience: resource,
      scope: args.scope,
      accessTokenTTL: ttl,
      ...resourceInfo,
    });
    token.extra = {
      sub: username,
      acr: acr || undefined,
      auth_time: authTime ? Number(authTime) : Math.floor(Date.now() / 1000),
    };
    ctx.oidc.entity('ClientCredentials', token);
    const value = await token.save();
    ctx.body = {
      access_token: value,
      expires_in: token.expiration,
      token_type: 'Bearer',
      scope: token.scope,
    };
  };
}

let handle = (req, res) => res.writeHead(503).end();
const server = http.createServer((req, res) => handle(req, res));
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, configuration());
  provider.registerGrantType(LOGIN_GRANT, loginGrant(provider), [
    'username',
    'acr',
    'auth_time',
    'resource',
  ]);
  handle = provider.callback();
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});
// The fixture stops the issuer with SIGTERM: close and leave at once.
process.on('SIGTERM', () => server.close(() => process.exit(0)));
