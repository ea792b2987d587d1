import { defineConfig } from 'vitest/config'
import vue from '@vitejs/plugin-vue'

// The API's default port (crm_api/platform/settings.py bind_port).
const api = process.env.CALLCARD_API ?? 'http://127.0.0.1:8000'

export default defineConfig({
  plugins: [vue()],
  server: {
    proxy: {
      '/api': api,
      '/ws': { target: api.replace(/^http/, 'ws'), ws: true },
    },
  },
  // Pages are lazy chunks: echarts and wavesurfer load only with the pages that draw.
  build: { chunkSizeWarningLimit: 1200 },
  test: {
    environment: 'jsdom',
    include: ['src/**/*.test.ts'],
  },
})
