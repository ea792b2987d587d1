import { get, post, type ClientPublic } from '../api/client'

/** Click-to-call a client's number: the agent's own phone rings first, then the client's. */
export async function callBack(clientId: number, e164: string | null): Promise<void> {
  const client = await get<ClientPublic>(`/clients/${clientId}`)
  const target = client.phones.find((p) => p.e164 === e164) ?? client.phones[0]
  if (!target) throw new Error('no phone on the card')
  await post(`/clients/${clientId}/call`, { phone_id: target.id })
}
