// The worker page's service worker: keeps the app shell (page, bundle) so that a tab reloaded
// while the parameter server is down still starts, restores its buffered gradients from
// IndexedDB and trains on. Network first, so a running PS always serves the newest page; the
// API is never cached. (Service workers need a secure context: https, or http on localhost.)
const CACHE = 'tabswarm-shell-v2';
const SHELL = ['/', '/app.js', '/app.css'];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(self.clients.claim());
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== self.location.origin) return;
  const shell = event.request.mode === 'navigate' ? '/' : SHELL.includes(url.pathname) ? url.pathname : undefined;
  if (!shell) return;
  event.respondWith(
    fetch(event.request)
      .then((res) => {
        if (res.ok) {
          const copy = res.clone();
          caches.open(CACHE).then((c) => c.put(shell, copy));
        }
        return res;
      })
      .catch(() => caches.match(shell).then((hit) => hit ?? Response.error())),
  );
});
