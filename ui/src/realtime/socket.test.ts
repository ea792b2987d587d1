// @vitest-environment node
// The one socket against a real WebSocket server: resume with ?since=, refetch signal on
// every (re)connect, backoff reconnect after the server drops the connection.
import { afterEach, describe, expect, it } from 'vitest'
import { WebSocket as NodeWebSocket, WebSocketServer } from 'ws'
import { Realtime, type Frame } from './socket'

// Node 20 has no global WebSocket; the browser does.
;(globalThis as { WebSocket?: unknown }).WebSocket ??= NodeWebSocket

let server: WebSocketServer | null = null
afterEach(() => server?.close())

function waitFor<T>(fn: () => T | undefined, ms = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const start = Date.now()
    const tick = () => {
      const v = fn()
      if (v !== undefined) return resolve(v)
      if (Date.now() - start > ms) return reject(new Error('timed out'))
      setTimeout(tick, 10)
    }
    tick()
  })
}

describe('Realtime', () => {
  it('resumes from the last frame id after the server drops it', async () => {
    const urls: string[] = []
    server = new WebSocketServer({ port: 0 })
    server.on('connection', (ws, req) => {
      urls.push(req.url ?? '')
      ws.send(JSON.stringify({ id: null, type: 'hello', data: {}, ts: null }))
      if (urls.length === 1) {
        ws.send(JSON.stringify({ id: '17-0', type: 'call.ringing', data: { call_id: 'a' }, ts: 'x' }))
        setTimeout(() => ws.close(1011), 20)
      }
    })
    const port = (server.address() as { port: number }).port
    const rt = new Realtime(() => `ws://127.0.0.1:${port}/ws`)
    const got: Frame[] = []
    rt.on('*', (f) => got.push(f))
    rt.start()
    await waitFor(() => (urls.length >= 2 ? true : undefined))
    await waitFor(() => (got.filter((f) => f.type === 'reconnected').length >= 2 ? true : undefined))
    rt.stop()
    expect(urls[0]).toBe('/ws')
    expect(urls[1]).toBe('/ws?since=17-0')
    const reconnects = got.filter((f) => f.type === 'reconnected').map((f) => f.data.resumed)
    expect(reconnects).toEqual([false, true])
    expect(got.filter((f) => f.type === 'call.ringing')).toHaveLength(1)
  })

  it('stops on 4401 and tells the app the session is gone', async () => {
    let connections = 0
    server = new WebSocketServer({ port: 0 })
    server.on('connection', (ws) => {
      connections++
      ws.close(4401, 'log in first')
    })
    const port = (server.address() as { port: number }).port
    const rt = new Realtime(() => `ws://127.0.0.1:${port}/ws`)
    let unauthorized = false
    rt.on('unauthorized', () => (unauthorized = true))
    rt.start()
    await waitFor(() => (unauthorized ? true : undefined))
    await new Promise((r) => setTimeout(r, 600))
    expect(connections).toBe(1) // no reconnect loop against a logged-out session
    rt.stop()
  })
})
