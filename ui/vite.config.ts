import tailwindcss from '@tailwindcss/vite';
import { defineConfig } from 'vitest/config';

const backend = 'http://127.0.0.1:8080';

export default defineConfig({
  plugins: [tailwindcss()],
  // Vite's own esbuild JSX transform: no React plugin needed.
  esbuild: { jsx: 'automatic' },
  build: {
    outDir: '../mediad/static',
    emptyOutDir: true,
    assetsDir: 'assets',
    target: 'es2022',
    sourcemap: false,
    // Everything hashed under assets/; index.html stays small and uncached.
    assetsInlineLimit: 0,
    reportCompressedSize: true,
    rollupOptions: {
      output: {
        // React and Socket.IO change less often than the page: their own cached files.
        manualChunks(id) {
          if (/node_modules\/(react|react-dom|scheduler)\//.test(id)) return 'react';
          if (/node_modules\/(socket\.io-client|socket\.io-parser|engine\.io-client|engine\.io-parser|@socket\.io)\//.test(id)) return 'socketio';
          return undefined;
        },
      },
    },
  },
  server: {
    proxy: {
      '/downloads': backend,
      '/files': backend,
      '/health': backend,
      '/detect': backend,
      '/openapi.json': backend,
      '/socket.io': { target: backend, ws: true },
    },
  },
  test: {
    include: ['src/**/*.test.{ts,tsx}'],
    environment: 'node',
  },
});
