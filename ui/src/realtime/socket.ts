// The tab's ONE WebSocket: reconnects with backoff, resumes with ?since=<last frame id>,
// and tells the stores to refetch when frames may have been lost (resync / a gap).

import type { Schemas } from '../api/client'

/** A frame of the server (one of crm_api/frames.py's `Frame` union, generated) or one the
 * socket makes itself: `reconnected` on every (re)connect, `unauthorized` on a 4401 close. */
export type Frame =
  | Schemas['Frame']
  | { id: null; type: 'reconnected'; data: { resumed: boolean }; ts: null }
  | { id: null; type: 'unauthorized'; data: Record<string, never>; ts: null }
export type FrameType = Frame['type']
/** The frame of this type; '*': any frame. */
export type FrameOf<K extends FrameType | '*'> = K extends FrameType ? Extract<Frame, { type: K }> : Frame
type Handler = (frame: Frame) => void

export type SocketState = 'connecting' | 'open' | 'closed'

export class Realtime {
  private ws: WebSocket | null = null
  private handlers = new Map<string, Set<Handler>>()
  private lastId: string | null = null
  private attempt = 0
  private timer: ReturnType<typeof setTimeout> | null = null
  private stopped = true
  private watching = new Set<number>()
  state: SocketState = 'closed'
  onState: (s: SocketState) => void = () => {}

  constructor(private readonly url: () => string) {}

  on<K extends FrameType | '*'>(type: K, handler: (frame: FrameOf<K>) => void): () => void {
    let set = this.handlers.get(type)
    if (!set) this.handlers.set(type, (set = new Set()))
    // Only frames of this type reach it (see emit).
    const h = handler as Handler
    set.add(h)
    return () => set!.delete(h)
  }

  start(): void {
    if (!this.stopped) return
    this.stopped = false
    this.connect()
  }

  stop(): void {
    this.stopped = true
    if (this.timer) clearTimeout(this.timer)
    this.ws?.close()
    this.ws = null
    this.lastId = null
    this.setState('closed')
  }

  watch(clientId: number): void {
    this.watching.add(clientId)
    this.send({ type: 'watch', data: { client_id: clientId } })
  }

  unwatch(clientId: number): void {
    this.watching.delete(clientId)
    this.send({ type: 'unwatch', data: { client_id: clientId } })
  }

  private send(msg: unknown): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg))
  }

  private setState(s: SocketState): void {
    this.state = s
    this.onState(s)
  }

  private connect(): void {
    const resuming = this.lastId !== null
    const url = this.url() + (resuming ? `?since=${encodeURIComponent(this.lastId!)}` : '')
    this.setState('connecting')
    const ws = new WebSocket(url)
    this.ws = ws
    ws.onmessage = (ev) => {
      let frame: Frame
      try {
        frame = JSON.parse(String(ev.data)) as Frame
      } catch {
        return
      }
      if (frame.id) this.lastId = frame.id
      if (frame.type === 'hello') {
        this.attempt = 0
        this.setState('open')
        for (const id of this.watching) this.send({ type: 'watch', data: { client_id: id } })
        // A first connect or a resumed one: whatever happened meanwhile is refetched.
        this.emit({ id: null, type: 'reconnected', data: { resumed: resuming }, ts: null })
      }
      this.emit(frame)
    }
    ws.onclose = (ev) => {
      if (this.ws !== ws) return
      this.ws = null
      this.setState('closed')
      if (this.stopped) return
      if (ev.code === 4401) {
        this.emit({ id: null, type: 'unauthorized', data: {}, ts: null })
        return
      }
      const delay = Math.min(10_000, 250 * 2 ** this.attempt++) * (0.75 + Math.random() / 2)
      this.timer = setTimeout(() => this.connect(), delay)
    }
  }

  private emit(frame: Frame): void {
    for (const h of this.handlers.get(frame.type) ?? []) h(frame)
    for (const h of this.handlers.get('*') ?? []) h(frame)
  }
}

export const realtime = new Realtime(() => {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:'
  return `${proto}//${location.host}/ws`
})
