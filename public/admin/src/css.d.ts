// esbuild bundles imported CSS into public/admin/console.css.
declare module '*.css';
