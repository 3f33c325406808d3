// Builds the page Tally embeds (crates/server/src/ui/assets.rs): exactly dist/index.html,
// dist/assets/ui.js and dist/assets/ui.css, with fixed names and deterministic bytes, since the
// built files are committed and `scripts/test` checks they match a rebuild.
import { defineConfig } from 'vite';

// `npm run dev` serves the sources with live reload at http://localhost:5173/ui/ and passes the
// API to a running `tally dev` (or `npm run mock`): TALLY_DEV_URL, by default port 2378.
declare const process: { env: Record<string, string | undefined> };
const api = process.env.TALLY_DEV_URL ?? 'http://127.0.0.1:2378';

export default defineConfig({
  base: '/ui/',
  publicDir: false,
  server: { proxy: { '/ui/cluster': api, '/dev': api } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // Everything in one script and one stylesheet: nothing inlined as data: URLs needs a file,
    // and nothing is split off.
    assetsInlineLimit: Number.MAX_SAFE_INTEGER,
    cssCodeSplit: false,
    modulePreload: { polyfill: false },
    sourcemap: false,
    copyPublicDir: false,
    reportCompressedSize: false,
    rolldownOptions: {
      output: {
        entryFileNames: 'assets/ui.js',
        chunkFileNames: 'assets/ui-[name].js',
        assetFileNames: (info) => (info.names.some((n) => n.endsWith('.css')) ? 'assets/ui.css' : 'assets/[name][extname]'),
      },
    },
  },
});
