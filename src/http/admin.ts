import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsync } from 'fastify';

/** The dashboard's own files: an HTML page, its script modules and its stylesheet. */
const PUBLIC_DIR = fileURLToPath(new URL('../../public/admin/', import.meta.url));

const require = createRequire(import.meta.url);
/** The folder of a package's entry file (its dist/), where its browser builds sit too. */
const distOf = (pkg: string) => dirname(require.resolve(pkg));

/**
 * The front-end libraries, served as installed in node_modules: no build step and nothing fetched
 * from the internet. Only these files, by name; no other path reaches node_modules.
 */
const VENDOR = new Map([
  ['preact.mjs', distOf('preact')],
  ['htm.mjs', distOf('htm')],
  ['chart.umd.min.js', distOf('chart.js')],
]);

/**
 * Only the dashboard's own origin: no inline script or style, no other host, never framed. The
 * API key it holds can then leave only for this server.
 */
export const ADMIN_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * The dashboard at /admin: static files only. It reads everything from /v1 with the key the
 * operator types in, which the page keeps in sessionStorage: no route here takes a key or a cookie.
 */
export const adminRoutes: FastifyPluginAsync = async (app) => {
  app.addHook('onRequest', async (_request, reply) => {
    reply.header('content-security-policy', ADMIN_CSP);
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
    reply.header('cache-control', 'no-store');
  });
  await app.register(fastifyStatic, {
    root: PUBLIC_DIR,
    prefix: '/admin/',
    index: 'index.html',
    schemaHide: true,
    // Its own would replace the hook's no-store with `public, max-age=0`.
    cacheControl: false,
  });
  // To /admin/, so that the page's relative URLs resolve under it.
  app.get('/admin', { schema: { hide: true } }, (_request, reply) => reply.redirect('/admin/', 301));
  app.get<{ Params: { file: string } }>(
    '/admin/vendor/:file',
    { schema: { hide: true } },
    async (request, reply) => {
      const dir = VENDOR.get(request.params.file);
      if (dir === undefined) return reply.callNotFound();
      return reply.sendFile(request.params.file, dir);
    },
  );
};
