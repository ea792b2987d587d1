// The live calls as the console and the live board read them: two PBXs may give their
// calls one id (their Linkedid counters restarted alike), so a call is its row, not its id.
import { createPinia, setActivePinia } from 'pinia'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { api, type CallPublic } from '../api/client'
import { realtime, type Frame } from '../realtime/socket'
import { useCalls } from './calls'
import { useSession } from './session'

const LINKEDID = '1700000000.1'

function call(id: number, pbx: string, over: Partial<CallPublic> = {}): CallPublic {
  return {
    id, pbx, call_id: LINKEDID, client_id: null, user_id: null, direction: 'inbound', state: 'ringing',
    caller: `+7916000000${id}`, callee: '74951234567', did: '74951234567', ringing: ['201'], agents: [],
    answered_by: null, started_at: `2026-12-02T10:00:0${id}Z`, answered_at: null, ended_at: null,
    disposition: null, ring_s: null, talk_s: null, failure: null, result: null,
    ...over,
  } as CallPublic
}

// What the socket hands the stores (its `emit` is the socket's own).
const frame = (f: unknown) => (realtime as unknown as { emit(f: Frame): void }).emit(f as Frame)
const ringing = (c: CallPublic) =>
  frame({ id: `${c.id}-0`, type: 'call.ringing', ts: null, data: { ...c, agent: '201', agent_user_id: null, client: null, communications: [], deals: [], tasks: [] } })

describe('live calls of two PBXs under one Linkedid', () => {
  beforeEach(() => {
    setActivePinia(createPinia())
    useSession().user = { id: 9, role: 'supervisor', extension: '100' } as ReturnType<typeof useSession>['user']
  })
  afterEach(() => vi.restoreAllMocks())

  it('are two rows of the live board, and one ending leaves the other', () => {
    const calls = useCalls()
    calls.bind()
    ringing(call(1, 'office-a'))
    ringing(call(2, 'office-b'))
    expect(calls.all.map((c) => [c.id, c.call_id, c.caller])).toEqual([
      [2, LINKEDID, '+79160000002'],
      [1, LINKEDID, '+79160000001'],
    ])
    frame({ id: '1-1', type: 'call.answered', ts: null, data: call(1, 'office-a', { state: 'answered', agents: ['201'] }) })
    frame({ id: '1-2', type: 'call.ended', ts: null, data: call(1, 'office-a', { state: 'ended', agents: ['201'] }) })
    expect(calls.calls[1].state).toBe('ended')
    expect(calls.calls[2].state).toBe('ringing')
    expect(calls.calls[2].caller).toBe('+79160000002')
  })

  it('are both kept by GET /calls/active', async () => {
    const calls = useCalls()
    vi.spyOn(api, 'get').mockResolvedValue({ items: [call(1, 'office-a'), call(2, 'office-b', { state: 'answered' })] } as never)
    await calls.refetch()
    expect(Object.values(calls.calls).map((c) => [c.id, c.state])).toEqual([
      [1, 'ringing'],
      [2, 'answered'],
    ])
  })

  it('keeps a click-to-call one call when the PBX names it', () => {
    const calls = useCalls()
    calls.bind()
    const crm = call(3, 'office-a', { call_id: null, direction: 'outbound', state: 'originating', user_id: 9 })
    frame({ id: '3-0', type: 'call.originating', ts: null, data: crm })
    expect(calls.calls[3].call_id).toBe('3')
    frame({ id: '3-1', type: 'call.answered', ts: null, data: { ...crm, call_id: LINKEDID, state: 'answered' } })
    expect(Object.values(calls.calls).map((c) => [c.id, c.call_id, c.state, c.ours])).toEqual([[3, LINKEDID, 'answered', true]])
  })
})
