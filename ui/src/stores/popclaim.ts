// One pop per call per user, however many tabs are open.
//
// Where the browser has Web Locks, the tabs elect one "popping" tab ahead of time: the tab
// holding the lock pops at once (no delay on the ringing path), and a tab the user focuses
// steals the lock, so the pop lands where the user is looking. Without Web Locks (plain
// http on a LAN name is not a secure context) the tabs race for a per-call claim in
// localStorage instead: a focused tab claims at once, a background tab waits a moment.
const LOCK = 'callcard.pop-leader'
const PREFIX = 'callcard.pop.'
// Kept in sessionStorage: a reloaded tab is still the tab that popped the call.
const TAB = sessionStorage.getItem('callcard.tab') ?? Math.random().toString(36).slice(2)
sessionStorage.setItem('callcard.tab', TAB)
const TTL_MS = 10 * 60_000

const locks: LockManager | undefined = typeof navigator !== 'undefined' ? navigator.locks : undefined
let leader = false
let granted: Promise<void> | null = null
let pending: AbortController | null = null

function campaign(steal = false): void {
  if (!locks) return
  pending?.abort()
  const ctl = new AbortController()
  pending = ctl
  let resolveFirst: () => void = () => {}
  granted ??= new Promise<void>((r) => (resolveFirst = r))
  const opts: LockOptions = steal ? { steal: true } : { signal: ctl.signal }
  locks
    .request(LOCK, opts, () => {
      leader = true
      resolveFirst()
      return new Promise<void>(() => {}) // held until the tab closes or another steals it
    })
    .catch((e: Error) => {
      leader = false
      if (e.name !== 'AbortError' || pending === ctl) campaign() // stolen: queue again
    })
}

export function startPopElection(): void {
  if (!locks || granted) return
  campaign(document.hasFocus())
  window.addEventListener('focus', () => {
    if (!leader) campaign(true)
  })
}

function read(key: string): { tab: string; at: number } | null {
  try {
    const v = JSON.parse(localStorage.getItem(key) ?? 'null') as { tab: string; at: number } | null
    return v && Date.now() - v.at < TTL_MS ? v : null
  } catch {
    return null
  }
}

export async function claimPop(callId: string, focused = document.hasFocus()): Promise<boolean> {
  if (locks && granted) {
    // Right after a load the election may still be running: give it a moment.
    if (!leader) await Promise.race([granted, new Promise((r) => setTimeout(r, 300))])
    return leader
  }
  const key = PREFIX + callId
  if (!focused) await new Promise((r) => setTimeout(r, 120))
  const held = read(key)
  if (held) return held.tab === TAB
  localStorage.setItem(key, JSON.stringify({ tab: TAB, at: Date.now() }))
  // Another tab may have written at the same moment: the last write wins, read it back.
  await new Promise((r) => setTimeout(r, 30))
  return read(key)?.tab === TAB
}
