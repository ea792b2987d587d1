import { mount } from '@vue/test-utils'
import { NMessageProvider } from 'naive-ui'
import { createPinia } from 'pinia'
import { describe, expect, it } from 'vitest'
import { defineComponent, h } from 'vue'
import { createMemoryHistory, createRouter } from 'vue-router'
import { i18n, setLang } from '../i18n'
import type { LiveCall } from '../stores/calls'
import CallPanel from './CallPanel.vue'

function call(over: Partial<LiveCall> = {}): LiveCall {
  return {
    call_id: 'c1', id: 1, direction: 'inbound', state: 'ringing', caller: '+79161234567', callee: '4950',
    started_at: new Date().toISOString(), answered_at: null, ended_at: null, disposition: null, talk_s: null, result: null, dialling: false, agent: '104',
    client: { id: 7, name: 'Иванов Иван', company_name: 'ООО «Ромашка»', is_new: false, manager: { id: 3, full_name: 'Иван Петров' } },
    client_id: 7, communications: [], deals: [{ id: 1, title: 'Поставка', amount: '120000.00' }],
    tasks: [], popped: true, summaryLoaded: true, seen: 0, ours: true, agents: [], ringing: ['104'], ...over,
  }
}

function render(c: LiveCall) {
  const router = createRouter({ history: createMemoryHistory(), routes: [{ path: '/:p(.*)*', component: { render: () => null } }] })
  const Host = defineComponent({ setup: () => () => h(NMessageProvider, null, () => h(CallPanel, { call: c })) })
  return mount(Host, { global: { plugins: [createPinia(), i18n, router] } })
}

describe('CallPanel', () => {
  it('shows the known caller: name, company, manager, open deals', () => {
    setLang('ru')
    const w = render(call())
    expect(w.get('[data-testid=call-client-name]').text()).toBe('Иванов Иван')
    expect(w.text()).toContain('ООО «Ромашка»')
    expect(w.get('[data-testid=call-manager]').text()).toBe('Иван Петров')
    expect(w.get('[data-testid=call-deals]').text()).toContain('Поставка')
    expect(w.text()).toContain('Входящий звонок')
    expect(w.find('[data-testid=new-card-form]').exists()).toBe(false)
  })

  it('words the callback task the system made in the user language', () => {
    setLang('ru')
    const w = render(call({ tasks: [{ id: 5, title: 'Иванов Иван', kind: 'missed_call', params: { count: 2 } }] }))
    expect(w.get('[data-testid=call-tasks]').text()).toBe('Перезвонить: Иванов Иван — пропущено звонков: 2')
  })

  it('offers the new-card form, prefilled with the number, for an unknown caller', () => {
    setLang('en')
    const w = render(call({ client: { id: 9, name: '+79161234567', company_name: null, is_new: true, manager: null } }))
    const form = w.get('[data-testid=new-card-form]')
    // As the call's header shows it (the card is written with the E.164 number).
    expect((form.get('input[name=phone]').element as HTMLInputElement).value).toBe('+7\u00a0916\u00a0123\u201145\u201167')
    expect(w.find('[data-testid=call-client-name]').exists()).toBe(false)
  })

  it('shows the talk time of an answered call and the after-call note', () => {
    setLang('en')
    const answered = new Date(Date.now() - 65_000).toISOString()
    const w = render(call({ state: 'answered', answered_at: answered }))
    expect(w.get('[data-testid=call-timer]').text()).toBe('01:05')
    expect(w.find('[data-testid=after-call-note]').exists()).toBe(true)
    expect(w.text()).toContain('In conversation')
  })
})
