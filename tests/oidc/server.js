// A real OpenID Connect provider for the single sign-on tests (node's oidc-provider),
// started by tests/helpers.py OidcProvider. One argument: a JSON file with
//   port       the loopback port to listen on
//   client     {client_id, client_secret, redirect_uris, post_logout_redirect_uris}
//   accounts   [{login, password, claims: {email, email_verified, groups, ...}}]
// The provider's issuer is http://127.0.0.1:<port>. People sign in on a minimal login
// form (#login, #password, #sign-in) that a browser or a script fills; the client is
// first-party, so there is no consent page.
//
// Two more discovery documents are served for the tests of wrong issuers:
//   /mixup/.well-known/openid-configuration  names its own issuer (.../mixup) but the
//     real provider's endpoints and keys: tokens come back from another issuer.
//   /liar/.well-known/openid-configuration   names an issuer that is not its address.
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';

import Provider from 'oidc-provider';

const settings = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const issuer = `http://127.0.0.1:${settings.port}`;
const accounts = new Map(settings.accounts.map((account) => [account.login, account]));

// One signing key, made for this run.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-key', use: 'sig', alg: 'RS256' };

const STANDARD = ['preferred_username', 'name', 'given_name', 'family_name'];

const provider = new Provider(issuer, {
  clients: [{
    ...settings.client,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [signingKey] },
  cookies: { keys: ['daydream-test-provider-cookies'] },
  pkce: { required: () => true },
  // The groups claim comes with the profile scope, as a school's provider is set to send it.
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: [...STANDARD, 'groups'],
  },
  features: {
    devInteractions: { enabled: false },
    // Plain pages (the defaults load a web font): "Yes, sign me out" is #provider-logout.
    rpInitiatedLogout: {
      enabled: true,
      async logoutSource(ctx, form) {
        ctx.body = `<!doctype html><html><head><title>Sign out</title></head><body>${form}
<button id="provider-logout" type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button></body></html>`;
      },
      async postLogoutSuccessSource(ctx) {
        ctx.body = '<!doctype html><html><head><title>Signed out</title></head><body><h1 id="signed-out">Signed out</h1></body></html>';
      },
    },
  },
  routes: {
    authorization: '/auth', token: '/token', jwks: '/jwks', userinfo: '/me', end_session: '/session/end',
  },
  async findAccount(ctx, sub) {
    const account = accounts.get(sub);
    if (!account) return undefined;
    return { accountId: sub, claims: async () => ({ sub, ...account.claims }) };
  },
  // A first-party client: every scope it asks for is granted without a consent page.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      const found = await ctx.oidc.provider.Grant.find(grantId);
      if (found) return found;
    }
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope(ctx.oidc.params.scope || 'openid');
    await grant.save();
    return grant;
  },
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = `<!doctype html><title>Error</title><h1 id="error">${escape(out.error)}</h1><p>${escape(out.error_description || '')}</p>`;
  },
});

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function loginPage(uid, error = '') {
  return `<!doctype html><html><head><title>School sign-in</title></head><body>
<h1>School account</h1>${error ? `<p id="login-error">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login">
<label>Login <input id="login" name="login" autocomplete="username"></label>
<label>Password <input id="password" name="password" type="password"></label>
<button id="sign-in" type="submit">Sign in</button></form></body></html>`;
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return Object.fromEntries(new URLSearchParams(body));
}

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  if (req.method === 'POST' && req.url.endsWith('/login')) {
    const form = await readForm(req);
    const account = accounts.get(form.login);
    if (!account || account.password !== form.password) {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(loginPage(details.uid, 'Wrong login or password.'));
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: form.login } }, { mergeWithLastSubmission: false });
    return;
  }
  if (details.prompt.name === 'login') {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(loginPage(details.uid));
    return;
  }
  // Any other prompt (consent) is granted by loadExistingGrant: go on.
  await provider.interactionFinished(req, res, {}, { mergeWithLastSubmission: true });
}

function discoveryOf(name, claimedIssuer) {
  return {
    issuer: claimedIssuer,
    authorization_endpoint: `${issuer}/auth`,
    token_endpoint: `${issuer}/token`,
    jwks_uri: `${issuer}/jwks`,
    userinfo_endpoint: `${issuer}/me`,
    response_types_supported: ['code'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: ['RS256'],
    code_challenge_methods_supported: ['S256'],
    [`x-${name}`]: true,
  };
}

const documents = {
  '/mixup/.well-known/openid-configuration': discoveryOf('mixup', `${issuer}/mixup`),
  '/liar/.well-known/openid-configuration': discoveryOf('liar', `${issuer}/elsewhere`),
};

const callback = provider.callback();
const server = http.createServer(async (req, res) => {
  try {
    const path = req.url.split('?')[0];
    if (documents[path]) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(documents[path]));
    } else if (path.startsWith('/interaction/')) {
      await interaction(req, res);
    } else {
      callback(req, res);
    }
  } catch (error) {
    res.writeHead(400, { 'content-type': 'text/plain' });
    res.end(String(error));
  }
});

server.listen(settings.port, '127.0.0.1', () => {
  console.log(`oidc provider ready at ${issuer}`);
});
