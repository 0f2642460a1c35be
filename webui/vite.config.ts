import { defineConfig } from "vite";

// The appliance's Quart app serves dist/index.html at "/" and dist/assets/* at "/assets/*",
// and nothing else: every file the page needs must land under assets/ (no public/ dir).
// Its CSP forbids inline scripts, so Vite's module preload polyfill (an inline-free external
// script anyway) is kept, and no plugin may inject inline <script>.
export default defineConfig({
  base: "/",
  publicDir: false,
  build: {
    outDir: "dist",
    assetsDir: "assets",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: true,
  },
  server: {
    // `npm run dev` against a locally running appliance (default port 8080).
    proxy: {
      "/api": "http://127.0.0.1:8080",
      "/socket.io": { target: "http://127.0.0.1:8080", ws: true },
    },
  },
});
