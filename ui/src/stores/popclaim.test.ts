import { beforeEach, describe, expect, it } from 'vitest'
import { claimPop } from './popclaim'

describe('one pop per call across tabs', () => {
  beforeEach(() => localStorage.clear())

  it('claims a new call once and keeps it on a reload', async () => {
    expect(await claimPop('c1', true)).toBe(true)
    expect(await claimPop('c1', true)).toBe(true) // the same tab (sessionStorage id)
  })

  it('leaves a call another tab claimed', async () => {
    localStorage.setItem('callcard.pop.c2', JSON.stringify({ tab: 'other-tab', at: Date.now() }))
    expect(await claimPop('c2', true)).toBe(false)
  })

  it('takes over a stale claim', async () => {
    localStorage.setItem('callcard.pop.c3', JSON.stringify({ tab: 'other-tab', at: Date.now() - 3_600_000 }))
    expect(await claimPop('c3', true)).toBe(true)
  })
})
