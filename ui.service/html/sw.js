// Service worker: keeps the app shell so the page opens offline. API answers are never cached.
// Bump VERSION whenever a shell file changes: the new worker fills a new cache, drops the old ones.
// The offline pack (runtime + model, cassava-offline-*) is the page's (ondevice.js): kept across
// shell versions, and the runtime's files are answered from it when the network is not there.
const VERSION = 'v3';
const CACHE = `cassava-shell-${VERSION}`;
const SHELL = [
  './', 'app.js', 'styles.css', 'manifest.webmanifest', 'icons/icon.svg',
  'i18n/en.json', 'i18n/fr.json', 'i18n/sw.json', 'i18n/pt.json', 'ondevice.js', 'preprocess.js',
];
const PACK_PREFIX = 'cassava-offline-';
const SCOPE = new URL('./', self.location).href;
const SHELL_URLS = new Set(SHELL.map((path) => new URL(path, SCOPE).href));
const INDEX_URLS = new Set([SCOPE, new URL('index.html', SCOPE).href]);

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(names.filter((name) => name !== CACHE && !name.startsWith(PACK_PREFIX))
        .map((name) => caches.delete(name))))
      .then(() => self.clients.claim()),
  );
});

/** The cache key of a request, or null when the worker leaves it to the network. */
function shellKey(request) {
  if (request.method !== 'GET') return null;
  const url = new URL(request.url);
  url.search = '';
  url.hash = '';
  if (INDEX_URLS.has(url.href)) return SCOPE;
  return SHELL_URLS.has(url.href) ? url.href : null; // /api/... is never in the shell
}

/** Whether the request is for the vendored runtime (versioned paths: a cached copy is the file). */
function isRuntime(request) {
  return request.method === 'GET' && new URL(request.url).href.startsWith(new URL('vendor/', SCOPE).href);
}

self.addEventListener('fetch', (event) => {
  if (isRuntime(event.request)) {
    // The network first (the runtime.json pointer must be fresh); the pack's copy when offline.
    event.respondWith(fetch(event.request).catch(async (error) => {
      const cached = await caches.match(event.request, { ignoreSearch: true });
      if (cached) return cached;
      throw error;
    }));
    return;
  }
  const key = shellKey(event.request);
  if (!key) return;
  // Cached copy at once (fast on 2G, works offline); refreshed in the background for next time.
  event.respondWith(caches.open(CACHE).then(async (cache) => {
    const refresh = fetch(event.request).then((response) => {
      if (response.ok) return cache.put(key, response.clone()).then(() => response);
      return response;
    });
    const cached = await cache.match(key);
    if (cached) {
      event.waitUntil(refresh.catch(() => undefined));
      return cached;
    }
    return refresh;
  }));
});
