// A real OpenID Provider for the tests: panva's certified `oidc-provider` (installed by
// `SDE_SETUP_HUB=1 bash scripts/setup.sh` into .build/node), on 127.0.0.1.
//
//   node tests/oidc_provider.js <port> <client_id> <client_secret> <redirect_uri>
//
// Environment:
//   OIDC_TEST_NHS_NUMBER         the `nhs_number` claim of the account "patient"
//   OIDC_TEST_CLAIMS_IN_ID_TOKEN "1": put the profile claims in the ID token too
//                                (otherwise, as the provider conforms to the spec for the
//                                code flow, they come from the userinfo endpoint only)
//   OIDC_TEST_SIGNING_ALG        the ID token's algorithm: RS256 (default), RS512 or ES256
//   OIDC_TEST_CLIENT_JWKS        a JSON key set of public keys: the client authenticates
//                                with private_key_jwt (as NHS login requires) instead of
//                                client_secret_basic
//
// Accounts (the dev sign-in form takes any login and any password):
//   patient      nhs_number = OIDC_TEST_NHS_NUMBER
//   no-number    no nhs_number claim
//   bad-number   an nhs_number that fails Modulus 11
// The `profile` scope carries nhs_number, family_name and birthdate (as NHS login's does).
// PKCE (S256) is required of the one client. Prints "ready" when listening.
'use strict';

const crypto = require('node:crypto');
const path = require('node:path');
const { pathToFileURL } = require('node:url');

const MODULE = path.join(
  __dirname, '..', '.build', 'node', 'node_modules', 'oidc-provider', 'lib', 'index.js',
);

function signingKey(alg) {
  const options = alg === 'ES256' ? ['ec', { namedCurve: 'P-256' }] : ['rsa', { modulusLength: 2048 }];
  const { privateKey } = crypto.generateKeyPairSync(...options);
  return { ...privateKey.export({ format: 'jwk' }), kid: `test-${alg}`, alg, use: 'sig' };
}

function account(id) {
  const claims = { sub: id, family_name: 'Tester', birthdate: '1970-01-01' };
  if (id === 'patient') claims.nhs_number = process.env.OIDC_TEST_NHS_NUMBER || '';
  if (id === 'bad-number') claims.nhs_number = '1234567890';
  return {
    accountId: id,
    async claims() {
      return claims;
    },
  };
}

async function main() {
  const [port, clientId, clientSecret, redirectUri] = process.argv.slice(2);
  if (!port || !clientId || !clientSecret || !redirectUri) {
    console.error('usage: oidc_provider.js <port> <client_id> <client_secret> <redirect_uri>');
    process.exit(2);
  }
  const alg = process.env.OIDC_TEST_SIGNING_ALG || 'RS256';
  const { default: Provider } = await import(pathToFileURL(MODULE).href);
  const issuer = `http://127.0.0.1:${port}`;
  const clientJwks = process.env.OIDC_TEST_CLIENT_JWKS;
  const clientAuth = clientJwks
    ? { token_endpoint_auth_method: 'private_key_jwt', jwks: JSON.parse(clientJwks) }
    : { token_endpoint_auth_method: 'client_secret_basic' };
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: [redirectUri],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        ...clientAuth,
        id_token_signed_response_alg: alg,
      },
    ],
    jwks: { keys: [signingKey(alg)] },
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    pkce: { required: () => true },
    claims: {
      openid: ['sub'],
      profile: ['nhs_number', 'family_name', 'birthdate'],
    },
    conformIdTokenClaims: process.env.OIDC_TEST_CLAIMS_IN_ID_TOKEN !== '1',
    features: { devInteractions: { enabled: true } },
    enabledJWA: {
      idTokenSigningAlgValues: ['RS256', 'RS512', 'ES256'],
      clientAuthSigningAlgValues: ['RS256', 'RS512', 'ES256'],
    },
    findAccount: async (_ctx, id) => account(id),
  });
  provider.on('server_error', (_ctx, err) => console.error('server_error', err));
  provider.listen(Number(port), '127.0.0.1', () => console.log('ready'));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
