// Test-only OAuth 2.0 / OIDC identity provider for crane's integration tests.
//
// Runs the real, OpenID-certified `oidc-provider` (pinned in package.json) with:
//   - the device authorization grant (RFC 8628), revocation, introspection;
//   - resource indicators: every access token is a JWT for the resource
//     `urn:crane:test-index` (audience of the same name, scope `index:read`);
//   - the built-in development interactions (any login and password work; the
//     consent form grants every scope that was asked for);
//   - one public native client `crane-test` (device_code + refresh_token grants);
//   - one confidential device-flow client `crane-test-confidential` (device_code +
//     refresh_token grants, authenticated with HTTP Basic: client_secret_basic) at the
//     device authorization, token, revocation and introspection endpoints;
//   - the client credentials grant (RFC 6749 4.4) for the confidential client `crane-ci`
//     (client_secret_basic). A request that names no `resource` gets the test index too
//     (defaultResource), so its access token is a JWT for `urn:crane:test-index`; its
//     scope is what was asked for, filtered to the resource's scopes: ask for `index:read`
//     (other scopes, e.g. `openid offline_access`, are dropped, never an error);
//   - refresh tokens that rotate on every use (presenting a used one revokes the grant);
//   - the in-memory adapter (state lives and dies with the process).
//
// Usage: node idp.mjs [--port N] [--host H] [--watch-stdin]
//   Prints exactly one line `READY http://<host>:<port>` on stdout once it listens;
//   that URL is the issuer. `--watch-stdin` exits when stdin reaches EOF (so a test
//   process that dies without cleaning up does not leave the IdP running).
//
// Environment (all in seconds):
//   ACCESS_TTL   access-token lifetime                        (default 300)
//   REFRESH_TTL  refresh-token and grant lifetime             (default 86400)
//   DEVICE_TTL   device-code / user-code lifetime             (default 600)
// and the confidential clients' secrets (test strings; servers.start_idp passes random
// ones per run, exposed on the Python side as Stack.ci_client_secret and
// Stack.confidential_client_secret):
//   CI_CLIENT_SECRET            secret of `crane-ci`       (default `crane-ci-test-secret`)
//   CONFIDENTIAL_CLIENT_SECRET  secret of `crane-test-confidential`
//                                                  (default `crane-confidential-test-secret`)
//
// Event lines on stdout (one per event, for tests to assert on):
//   EVENT device_authorization.success <user_code>
//   EVENT token.issued <grant_type> <grantId>
//   EVENT token.error <grant_type> <error> <error_detail or ->
//   EVENT refresh_token.reused <grantId>       (a rotated refresh token was presented again)
//   EVENT grant.revoked <grantId>              (reuse detection, revocation endpoint, ...)
//   EVENT token.revoked <kind>                 (revocation endpoint success)
//   EVENT server_error <message>
//   EVENT client.auth <route> <client_id or -> <basic|post|none> <status>
//        (how a client authenticated at the device_authorization, token, revocation or
//        introspection endpoint: `basic` = an `Authorization: Basic` header, `post` =
//        `client_secret` in the body, `none` = neither; written after the answer. The
//        provider accepts `post` from a client_secret_basic client too, so a test that
//        wants client_secret_basic asserts `basic` here)

import http from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';

import Provider, { errors } from 'oidc-provider';

const RESOURCE = 'urn:crane:test-index';
const RESOURCE_SCOPE = 'index:read';
const CLIENT_ID = 'crane-test';
const CONFIDENTIAL_CLIENT_ID = 'crane-test-confidential';
const CI_CLIENT_ID = 'crane-ci';
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

function intFromEnv(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number.parseInt(raw, 10);
  if (!Number.isFinite(value) || value <= 0) {
    throw new Error(`${name} must be a positive integer (seconds), got ${JSON.stringify(raw)}`);
  }
  return value;
}

function parseArgs(argv) {
  const opts = { port: 0, host: '127.0.0.1', watchStdin: false };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (arg === '--port') {
      opts.port = Number.parseInt(argv[i += 1], 10);
    } else if (arg.startsWith('--port=')) {
      opts.port = Number.parseInt(arg.slice('--port='.length), 10);
    } else if (arg === '--host') {
      opts.host = argv[i += 1];
    } else if (arg.startsWith('--host=')) {
      opts.host = arg.slice('--host='.length);
    } else if (arg === '--watch-stdin') {
      opts.watchStdin = true;
    } else {
      throw new Error(`unknown argument: ${arg}`);
    }
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    throw new Error('--port must be an integer between 0 and 65535');
  }
  return opts;
}

function event(...fields) {
  process.stdout.write(`EVENT ${fields.map((f) => (f === undefined || f === null || f === '' ? '-' : String(f).replace(/\s+/g, '_'))).join(' ')}\n`);
}

const opts = parseArgs(process.argv.slice(2));
const ACCESS_TTL = intFromEnv('ACCESS_TTL', 300);
const REFRESH_TTL = intFromEnv('REFRESH_TTL', 86400);
const DEVICE_TTL = intFromEnv('DEVICE_TTL', 600);
const CI_CLIENT_SECRET = process.env.CI_CLIENT_SECRET || 'crane-ci-test-secret';
const CONFIDENTIAL_CLIENT_SECRET = process.env.CONFIDENTIAL_CLIENT_SECRET
  || 'crane-confidential-test-secret';

// A fresh signing key per run: tokens from an earlier run never verify.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingJwk = {
  ...privateKey.export({ format: 'jwk' }),
  kid: `crane-test-${randomBytes(6).toString('hex')}`,
  use: 'sig',
  alg: 'RS256',
};

// Bind first so that the issuer can carry the real port (port 0 = any free port).
const server = http.createServer();
server.keepAliveTimeout = 5000;

server.listen(opts.port, opts.host, () => {
  const { port } = server.address();
  const issuer = `http://${opts.host}:${port}`;

  const configuration = {
    clients: [{
      client_id: CLIENT_ID,
      client_name: 'crane test client',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: [DEVICE_GRANT, 'refresh_token'],
      response_types: [],
      redirect_uris: [],
    }, {
      client_id: CONFIDENTIAL_CLIENT_ID,
      client_secret: CONFIDENTIAL_CLIENT_SECRET,
      client_name: 'crane confidential device client',
      application_type: 'native',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: [DEVICE_GRANT, 'refresh_token'],
      response_types: [],
      redirect_uris: [],
    }, {
      client_id: CI_CLIENT_ID,
      client_secret: CI_CLIENT_SECRET,
      client_name: 'crane CI client (client credentials)',
      application_type: 'web',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    }],
    jwks: { keys: [signingJwk] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    features: {
      devInteractions: { enabled: true },
      deviceFlow: { enabled: true },
      clientCredentials: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // Requests that name no resource get the test index (client credentials too).
        defaultResource(ctx, client, oneOf) {
          if (oneOf) return oneOf.includes(RESOURCE) ? RESOURCE : oneOf;
          return RESOURCE;
        },
        // The token endpoint need not repeat `resource`: use the granted one.
        useGrantedResource() {
          return true;
        },
        getResourceServerInfo(ctx, resourceIndicator) {
          if (resourceIndicator !== RESOURCE) {
            // (`errors` is a named export: `Provider.errors` is undefined and gave a 500)
            throw new errors.InvalidTarget(`unknown resource ${resourceIndicator}`);
          }
          return {
            scope: RESOURCE_SCOPE,
            audience: RESOURCE,
            accessTokenTTL: ACCESS_TTL,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    // oidc-provider's default: a refresh token only when `offline_access` was asked for
    // and granted (and the client may use the refresh_token grant). Kept on purpose:
    // it is what real providers do, and crane's default scopes ask for offline_access.
    async issueRefreshToken(ctx, client, code) {
      return client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access');
    },
    // Every refresh rotates the refresh token; the used one becomes "consumed" and
    // presenting it again revokes the whole grant (oidc-provider's reuse detection).
    rotateRefreshToken: true,
    ttl: {
      AccessToken: ACCESS_TTL,
      ClientCredentials: ACCESS_TTL,
      RefreshToken: REFRESH_TTL,
      Grant: REFRESH_TTL,
      DeviceCode: DEVICE_TTL,
      IdToken: ACCESS_TTL,
      Interaction: 600,
      Session: 3600,
    },
    // Keep the error bodies terse and machine readable.
    async renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = `<!DOCTYPE html><html><head><title>oops! something went wrong</title></head><body><h1>oops! something went wrong</h1><pre>${Object.entries(out).map(([k, v]) => `${k}: ${String(v).replace(/[<>&]/g, '')}`).join('\n')}</pre></body></html>`;
    },
  };

  let provider;
  try {
    provider = new Provider(issuer, configuration);
  } catch (err) {
    process.stderr.write(`idp: configuration error: ${err.stack || err}\n`);
    process.exit(2);
  }

  provider.on('device_authorization.success', (ctx, body) => {
    event('device_authorization.success', body?.user_code);
  });
  provider.on('grant.success', (ctx) => {
    const grantId = ctx.oidc.entities?.Grant?.jti
      ?? ctx.oidc.entities?.RefreshToken?.grantId
      ?? ctx.oidc.entities?.DeviceCode?.grantId;
    event('token.issued', ctx.oidc.params?.grant_type, grantId);
  });
  provider.on('grant.error', (ctx, err) => {
    const grantType = ctx.oidc?.params?.grant_type;
    if (err?.error_detail === 'refresh token already used') {
      event('refresh_token.reused', ctx.oidc?.entities?.RefreshToken?.grantId);
    }
    event('token.error', grantType, err?.error ?? err?.message, err?.error_detail);
  });
  provider.on('grant.revoked', (ctx, grantId) => {
    event('grant.revoked', grantId);
  });
  // oidc-provider emits no event for a successful revocation request: watch the route.
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.oidc?.route === 'revocation' && ctx.status === 200) {
      const kind = ['AccessToken', 'RefreshToken', 'ClientCredentials']
        .find((k) => ctx.oidc.entities?.[k]);
      event('token.revoked', kind);
    }
  });
  // How each client authenticated (see the header): after the answer, whatever it was.
  const CLIENT_AUTH_ROUTES = new Set(['device_authorization', 'token', 'revocation', 'introspection']);
  provider.use(async (ctx, next) => {
    try {
      await next();
    } finally {
      const route = ctx.oidc?.route;
      if (CLIENT_AUTH_ROUTES.has(route)) {
        const header = ctx.headers.authorization ?? '';
        let method = 'none';
        if (/^basic /i.test(header)) method = 'basic';
        else if (ctx.oidc?.params?.client_secret) method = 'post';
        const clientId = ctx.oidc?.client?.clientId ?? ctx.oidc?.authorization?.clientId;
        event('client.auth', route, clientId, method, ctx.status);
      }
    }
  });
  provider.on('server_error', (ctx, err) => {
    event('server_error', err?.message);
    process.stderr.write(`idp: server_error: ${err?.stack || err}\n`);
  });

  server.on('request', provider.callback());
  process.stdout.write(`READY ${issuer}\n`);
});

server.on('error', (err) => {
  process.stderr.write(`idp: cannot listen on ${opts.host}:${opts.port}: ${err.message}\n`);
  process.exit(3);
});

let stopping = false;
function stop(signal) {
  if (stopping) return;
  stopping = true;
  server.close(() => process.exit(0));
  server.closeAllConnections();
  // Never hang on shutdown.
  setTimeout(() => process.exit(0), 1000).unref();
  if (signal) process.stderr.write(`idp: stopping on ${signal}\n`);
}

process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGHUP', () => stop('SIGHUP'));
if (opts.watchStdin) {
  process.stdin.on('end', () => stop());
  process.stdin.on('error', () => stop());
  process.stdin.resume();
}
