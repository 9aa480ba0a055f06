"""Global rate limiting: envoyproxy/ratelimit-compatible rules, algorithms, stores, decisions.

Import from the modules; this package loads none of them (reading a schema or the results
must not load the limiter and every store).

rules.py       YAML documents -> RateLimitRules (pure; the YAML schema is schema/ratelimit_rules.py)
algorithms.py  the limit math, clock passed in (pure)
results.py     what the limiter answers: codes, statuses, lockout state
store.py       QuotaStore protocol (apply, reset, close, stats) and key layout;
               memory_store / redis_store (+ lua.py) implement it; resilient_store (timeout,
               breaker), batching_store and local_cache wrap either; store_chain.py composes
               them in a declared order; factory.py picks the backend and the layers
limiter.py     RateLimiter: should_rate_limit, check_descriptors, brute-force lockout
response.py    X-RateLimit headers and the JSON 429 body
"""
