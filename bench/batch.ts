/**
 * batch_create_orders: POST /v1/orders/batch with 1,000 paid orders (two line items each) for
 * random seeded customers, one batch at a time against the full stack. Each batch is one
 * transaction with its audit rows and the metrics triggers, as in production.
 */
export interface BatchFigures {
  size: number
  batches: number
  minMs: number
  medianMs: number
  maxMs: number
  /** Orders per second at the median batch time. */
  ordersPerSecond: number
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

export async function runBatchCreate(baseUrl: string, authorization: string, customerIds: string[], batches: number, size: number): Promise<BatchFigures> {
  const times: number[] = []
  for (let b = 0; b < batches; b++) {
    const items = Array.from({ length: 1000 }, (_, i) => ({
      customer_id: customerIds[(b * 1000 + i * 7) % customerIds.length],
      currency: 'USD', channel: 'online', payment_method: 'card', status: 'paid', tax_rate: '8',
      items: [
        { sku: 'SKU-1000', product_name: 'Oolong tea 250 g', category: 'tea', quantity: 2, unit_price: '89.00' },
        { sku: 'SKU-1014', product_name: 'Notebook A5', category: 'stationery', quantity: 1, unit_price: '6.90' },
      ],
    }))
    const started = performance.now()
    const res = await fetch(`${baseUrl}/v1/orders/batch`, {
      method: 'POST', headers: { authorization, 'content-type': 'application/json' }, body: JSON.stringify({ items }),
    })
    const body = await res.text()
    if (res.status !== 200) throw new Error(`batch create answered ${res.status}: ${body.slice(0, 500)}`)
    times.push(performance.now() - started)
  }
  const med = median(times)
  return { size, batches, minMs: Math.min(...times), medianMs: med, maxMs: Math.max(...times), ordersPerSecond: 1000 / (med / 1000) }
}
