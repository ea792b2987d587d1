// One pop per call per user, however many tabs are open: the tabs race for a claim in
// localStorage (shared by the browser's tabs); a focused tab claims at once, a background
// tab waits a moment so the tab the user looks at wins.
const PREFIX = 'callcard.pop.'
// Kept in sessionStorage: a reloaded tab is still the tab that popped the call.
const TAB = sessionStorage.getItem('callcard.tab') ?? Math.random().toString(36).slice(2)
sessionStorage.setItem('callcard.tab', TAB)
const TTL_MS = 10 * 60_000

function read(key: string): { tab: string; at: number } | null {
  try {
    const v = JSON.parse(localStorage.getItem(key) ?? 'null') as { tab: string; at: number } | null
    return v && Date.now() - v.at < TTL_MS ? v : null
  } catch {
    return null
  }
}

export async function claimPop(callId: string, focused = document.hasFocus()): Promise<boolean> {
  const key = PREFIX + callId
  if (!focused) await new Promise((r) => setTimeout(r, 120))
  const held = read(key)
  if (held) return held.tab === TAB
  localStorage.setItem(key, JSON.stringify({ tab: TAB, at: Date.now() }))
  // Another tab may have written at the same moment: the last write wins, read it back.
  await new Promise((r) => setTimeout(r, 30))
  return read(key)?.tab === TAB
}

export function sweepClaims(): void {
  for (let i = localStorage.length - 1; i >= 0; i--) {
    const key = localStorage.key(i)
    if (key?.startsWith(PREFIX) && !read(key)) localStorage.removeItem(key)
  }
}
