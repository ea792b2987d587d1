// Missed calls as the console lists them: two PBXs may give their calls one id.
import { createPinia, setActivePinia } from 'pinia'
import { describe, expect, it } from 'vitest'
import { realtime, type Frame } from '../realtime/socket'
import { useMissed } from './missed'

const frame = (f: unknown) => (realtime as unknown as { emit(f: Frame): void }).emit(f as Frame)

function missed(id: number, pbx: string, endedAt: string): unknown {
  return {
    id: `${id}-0`, type: 'call.missed', ts: null,
    data: {
      id, pbx, call_id: '1700000000.1', client_id: null, user_id: null, direction: 'inbound', state: 'ended',
      caller: '+79160000001', callee: '74951234567', did: null, ringing: ['201'], agents: [], answered_by: null,
      started_at: endedAt, answered_at: null, ended_at: endedAt, disposition: 'no_answer', ring_s: 20, talk_s: null,
      failure: null, assignee_id: 3,
    },
  }
}

describe('missed calls', () => {
  it("counts two PBXs' missed calls of one Linkedid from one number as two", () => {
    setActivePinia(createPinia())
    const store = useMissed()
    frame(missed(1, 'office-a', '2026-12-02T10:00:00Z'))
    frame(missed(2, 'office-b', '2026-12-02T10:01:00Z'))
    expect(store.rows.map((r) => [r.phone, r.count])).toEqual([['+79160000001', 2]])
  })
})
