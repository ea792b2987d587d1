import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { api, type CallPublic, type Deal, type Schemas, type Task } from '../api/client'
import { realtime, type FrameOf } from '../realtime/socket'
import { phone } from '../format'
import { i18n } from '../i18n'
import { claimPop, startPopElection } from './popclaim'
import { usePopAlert } from './popAlert'
import { useSession } from './session'

// What the console keeps of the pop's card (`CallRinging`), also filled from
// GET /clients/{id}/caller-card and from the deal and task forms.
export type PopClient = Pick<Schemas['PopClient'], 'id' | 'name' | 'company_name' | 'is_new' | 'manager'>
export type PopDeal = Pick<Schemas['PopDeal'] | Deal, 'id' | 'title' | 'amount'>
export type PopTask = Pick<Schemas['PopTask'] | Task, 'id' | 'title' | 'kind' | 'params'>

/** One call as the console shows it: the call (`CallPublic`), the card its pop carries,
 * and what this tab knows of it. */
export type LiveCall = Pick<
  CallPublic,
  'id' | 'direction' | 'state' | 'caller' | 'callee' | 'started_at' | 'answered_at' | 'ended_at' | 'disposition' | 'talk_s' | 'ringing' | 'agents'
> & {
  call_id: string // the PBX's call id, else Callcard's
  dialling: boolean // click-to-call: the user picked up, the client's number is being dialled
  result: NonNullable<CallPublic['result']> | null // what came of it, picked after the call
  agent: string | null
  client: PopClient | null
  client_id: number | null
  communications: Schemas['CallRinging']['communications']
  deals: PopDeal[]
  tasks: PopTask[]
  popped: boolean // this tab shows the pop (one tab per call per user)
  ours: boolean // rings or rang on this user's phone
  summaryLoaded: boolean
  seen: number // when this tab last heard of the call (ms)
}

/** What a frame, GET /calls/active or this tab's own action says of a call (its row id). */
type CallUpdate = Partial<LiveCall> & Pick<LiveCall, 'id'> & Partial<Pick<Schemas['CallRinging'], 'agent_user_id' | 'user_id'>>

/** The call id a call shows: the PBX's, else Callcard's, else its row id. Not a key: two
 * PBXs may give their calls one id, so the store keys calls by their row id. */
const named = (c: Pick<CallPublic, 'call_id' | 'id'>): string => c.call_id ?? String(c.id)

const RANK: Record<string, number> = { originating: 0, ringing: 1, answered: 2, ended: 3, failed: 3 }

export const useCalls = defineStore('calls', () => {
  const calls = ref<Record<number, LiveCall>>({})
  const dismissed = new Set<number>()

  const all = computed(() =>
    Object.values(calls.value).sort((a, b) => b.started_at.localeCompare(a.started_at)),
  )
  // The console's calls: those that concern this user (others only feed the live board).
  const list = computed(() => all.value.filter((c) => c.ours))
  const current = computed(() => list.value.find((c) => !dismissed.has(c.id)) ?? null)
  // A click-to-call under way (the user's phone rings, then the client's) is the user
  // calling, not an incoming call.
  const calling = (c: LiveCall) => c.direction === 'outbound' && (c.state === 'originating' || c.state === 'ringing')
  const onCall = computed(() => list.value.some((c) => c.state === 'answered' || calling(c)))
  const ringing = computed(() => list.value.some((c) => c.state === 'ringing' && !calling(c)))

  function upsert(data: CallUpdate): LiveCall {
    // A click-to-call is known by Callcard's id until the PBX names it: one row id throughout.
    const prev: LiveCall | undefined = calls.value[data.id]
    const next: LiveCall = {
      call_id: data.call_id ?? prev?.call_id ?? String(data.id),
      id: data.id,
      direction: data.direction ?? prev?.direction ?? 'inbound',
      state: data.state ?? prev?.state ?? 'ringing',
      dialling: data.dialling ?? prev?.dialling ?? false,
      caller: data.caller ?? prev?.caller ?? null,
      callee: data.callee ?? prev?.callee ?? null,
      started_at: data.started_at ?? prev?.started_at ?? new Date().toISOString(),
      answered_at: data.answered_at ?? prev?.answered_at ?? null,
      ended_at: data.ended_at ?? prev?.ended_at ?? null,
      disposition: data.disposition ?? prev?.disposition ?? null,
      talk_s: data.talk_s ?? prev?.talk_s ?? null,
      result: data.result !== undefined ? data.result : (prev?.result ?? null),
      agent: data.agent ?? prev?.agent ?? null,
      client: data.client !== undefined ? data.client : (prev?.client ?? null),
      client_id: data.client?.id ?? data.client_id ?? prev?.client_id ?? null,
      communications: data.communications ?? prev?.communications ?? [],
      deals: data.deals ?? prev?.deals ?? [],
      tasks: data.tasks ?? prev?.tasks ?? [],
      popped: prev?.popped ?? false,
      ringing: data.ringing ?? prev?.ringing ?? [],
      agents: data.agents ?? prev?.agents ?? [],
      ours:
        prev?.ours ||
        mine(data.agent_user_id, [data.agent, ...(data.ringing ?? []), ...(data.agents ?? [])], data.user_id),
      summaryLoaded: prev?.summaryLoaded || data.client !== undefined,
      seen: Date.now(),
    }
    calls.value = { ...calls.value, [data.id]: next }
    return next
  }

  // Supervisors get every call's frames for the live board; only calls ringing on this
  // user's own phone pop.
  function mine(agentUserId: unknown, exts: (string | null | undefined)[], userId?: number | null): boolean {
    const me = useSession().user
    if (!me) return false
    if (agentUserId === me.id || (userId != null && userId === me.id)) return true
    return !!me.extension && exts.includes(me.extension)
  }

  async function onRinging(frame: FrameOf<'call.ringing'>): Promise<void> {
    const data = { ...frame.data, call_id: named(frame.data) }
    performance.mark(`call.ringing:${data.call_id}`)
    upsert(data)
    if (!mine(data.agent_user_id, [data.agent])) return
    if (await claimPop(String(data.id))) {
      const call = calls.value[data.id]
      call.popped = true
      dismissed.delete(data.id)
      if (call.state === 'ringing' && call.direction === 'inbound') {
        const who = call.client && !call.client.is_new ? call.client.name : phone(call.caller) || i18n.global.t('call.withheld')
        usePopAlert().alert(call.id, i18n.global.t('call.incoming'), who)
      }
    }
  }

  /** Click-to-call: the user's own call shows at once (their phone rings first), then
   * says when the client's number is being dialled. */
  async function onOutbound(frame: FrameOf<'call.originating' | 'call.dialling'>): Promise<void> {
    const data = frame.data
    const call = upsert({ ...data, call_id: named(data), dialling: frame.type === 'call.dialling' || undefined })
    if (!call.popped && mine(null, [], data.user_id) && (await claimPop(String(call.id)))) {
      calls.value[call.id].popped = true
      dismissed.delete(call.id)
    }
    if (!call.summaryLoaded) await loadSummary(calls.value[call.id])
  }

  function onState(frame: FrameOf<'call.answered' | 'call.ended' | 'call.failed'>): void {
    const call = upsert({ ...frame.data, call_id: named(frame.data) })
    if (call.state !== 'ringing') usePopAlert().stop(call.id)
    if (frame.type !== 'call.ended') return
    // A call that only rang here leaves the console; one this user talked on stays for
    // the after-call note.
    if (call.popped && !mine(null, call.agents, null)) {
      dismiss(call.id)
      return
    }
    if (call.client_id && !call.summaryLoaded) void loadSummary(call)
  }

  /** The card of a call this tab did not see ring (a page opened during the call, or a
   * number just attached to a client): the pop's card as the server builds it. */
  async function loadSummary(call: LiveCall): Promise<void> {
    if (!call.client_id) return
    try {
      const card = await api.get('/clients/{client_id}/caller-card', { path: { client_id: call.client_id } })
      upsert({ id: call.id, ...card })
    } catch {
      /* the card is not ours to see: the panel shows the number only */
    }
  }

  /** GET /calls/active: on page load and after every (re)connect of the socket. */
  async function refetch(): Promise<void> {
    const asked = Date.now()
    let active: CallPublic[]
    try {
      active = (await api.get('/calls/active')).items
    } catch {
      return
    }
    const live = new Set(active.map((c) => c.id))
    const kept: Record<number, LiveCall> = {}
    for (const v of Object.values(calls.value)) {
      // Calls that ended while we were away drop out; ended ones stay for the after-call note.
      // (A frame that came while the request was out is newer than the answer.)
      if (live.has(v.id) || v.state === 'ended' || v.state === 'failed' || v.seen >= asked) kept[v.id] = v
    }
    calls.value = kept
    for (const c of active) {
      // A frame that arrived while this request was out is newer than its answer: a call
      // never goes back from ended to answered, or from answered to ringing.
      const prev = calls.value[c.id]
      if (prev && RANK[prev.state] !== undefined && RANK[prev.state] > (RANK[c.state] ?? 0)) continue
      const call = upsert({
        call_id: named(c), id: c.id, direction: c.direction, state: c.state, caller: c.caller,
        callee: c.callee, started_at: c.started_at, answered_at: c.answered_at, client_id: c.client_id,
        ringing: c.ringing, agents: c.agents, user_id: c.user_id,
      })
      if (!call.summaryLoaded) {
        const ours = mine(null, [...c.ringing, ...c.agents], c.user_id)
        if (ours && (await claimPop(String(c.id)))) calls.value[c.id].popped = true
        await loadSummary(call)
      }
    }
    // A pop that stopped ringing here without a frame (taken elsewhere) stops its ring too.
    const rung = usePopAlert().ringing
    if (rung !== null && calls.value[rung]?.state !== 'ringing') usePopAlert().stop(rung)
  }

  function dismiss(id: number): void {
    usePopAlert().stop(id)
    dismissed.add(id)
    const { [id]: _gone, ...rest } = calls.value
    calls.value = rest
  }

  // A call that stopped ringing here without a frame for this user (another agent took
  // it, or the caller hung up and the follow-up went to the client's manager) must not
  // stay on screen: while a call is live, /calls/active is asked every few seconds.
  const LIVE_POLL_MS = 4000
  setInterval(() => {
    if (useSession().user && all.value.some((c) => c.state === 'ringing' || c.state === 'answered')) void refetch()
  }, LIVE_POLL_MS)

  let bound = false
  function bind(): void {
    if (bound) return
    bound = true
    startPopElection()
    realtime.on('call.ringing', (f) => void onRinging(f))
    realtime.on('call.originating', (f) => void onOutbound(f))
    realtime.on('call.dialling', (f) => void onOutbound(f))
    realtime.on('call.answered', onState)
    realtime.on('call.ended', onState)
    realtime.on('call.failed', onState)
    realtime.on('reconnected', () => void refetch())
    realtime.on('resync', () => void refetch())
  }

  return { calls, all, list, current, onCall, ringing, bind, refetch, dismiss, upsert, loadSummary }
})
