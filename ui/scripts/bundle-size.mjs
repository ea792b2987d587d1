// The initial download of the web app: index.html's script and the chunks it preloads,
// gzip-compressed (what a browser fetches before the login page can paint).
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'

const dist = new URL('../dist/', import.meta.url).pathname
const html = readFileSync(join(dist, 'index.html'), 'utf8')
const initial = [...html.matchAll(/(?:src|href)="\/(assets\/[^"]+\.(?:js|css))"/g)].map((m) => m[1])
const size = (f) => gzipSync(readFileSync(join(dist, f))).length
let total = 0
for (const f of initial) {
  const n = size(f)
  total += n
  console.log(`${(n / 1024).toFixed(1).padStart(7)} kB  ${f}`)
}
const all = readdirSync(join(dist, 'assets')).filter((f) => f.endsWith('.js'))
const everything = all.reduce((s, f) => s + size(join('assets', f)), 0)
console.log(`initial (gzip): ${(total / 1024).toFixed(1)} kB; all JS chunks (gzip): ${(everything / 1024).toFixed(1)} kB`)
