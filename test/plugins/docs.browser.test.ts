import t from 'tap'
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chromium, type Browser, type Page } from 'playwright-core'
import { setup, token } from '../helpers/app.js'

// Waits are locators, not page functions: the page's CSP forbids the eval a string predicate needs.

/**
 * Swagger UI as an operator uses it, in a real headless browser (Debian's chromium driven by
 * playwright-core) against the app listening on a port with its own database: open /docs,
 * authorize with a minted token, create a customer and find it in the list through "Try it out",
 * reload and still be authorized. With no browser the test fails, saying how to get one.
 * What the browser receives is checked by the app's own contract checks (buildTestApp): the API
 * operations it runs in full; /docs and its assets are no operations of the API (HTML, scripts,
 * styles), so only an error among them must be a problem.
 */

/** CHROMIUM_PATH, else the first of Debian's and the usual names on PATH. */
function findChromium(): string | undefined {
  const given = process.env.CHROMIUM_PATH
  if (given) return existsSync(given) ? given : undefined
  for (const name of ['chromium', 'chromium-browser', 'google-chrome-stable', 'google-chrome']) {
    try {
      const found = execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim()
      if (found) return found
    } catch {
      // not on PATH
    }
  }
  return undefined
}

const executablePath = findChromium()
if (!executablePath) {
  t.fail('no browser found for the Swagger UI test: install Debian\'s chromium (apt-get install -y chromium; .ci/run does) or set CHROMIUM_PATH')
} else {
  const ctx = await setup()
  await ctx.app.listen({ port: 0, host: '127.0.0.1' })
  const address = ctx.app.server.address()
  const base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`
  const browser: Browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'] })
  t.teardown(() => browser.close())
  const page: Page = await browser.newPage()
  page.setDefaultTimeout(60_000)
  const bearer = await token('customers:read customers:write pii:read', { sub: 'user:docs-browser', expiresIn: '30m' })
  const name = `Docs Browser ${Date.now().toString(36)}`

  /** Expands an operation, presses "Try it out", lets `fill` edit the form, executes, returns the status and body shown. */
  async function execute(operation: string, fill: (block: ReturnType<Page['locator']>) => Promise<void> = async () => {}) {
    const block = page.locator(`[id$="-${operation}"].opblock`)
    if (!(await block.locator('.try-out').isVisible())) await block.locator('.opblock-summary').first().click()
    const tryOut = block.locator('button.try-out__btn')
    if ((await tryOut.textContent())?.includes('Try it out')) await tryOut.click()
    await fill(block)
    await block.locator('button.execute').click()
    const status = block.locator('.live-responses-table tbody .response .response-col_status').first()
    await status.waitFor()
    const body = await block.locator('.live-responses-table .response-col_description pre').first().textContent()
    return { status: (await status.textContent())?.trim(), body: body ?? '' }
  }

  t.test('the page is crm-api\'s: title, logo, tags in domain order, the token note, a filter box', async (t) => {
    await page.goto(`${base}/docs`)
    await page.locator('.swagger-ui .info .title').waitFor()
    t.equal(await page.title(), 'crm-api · API docs')
    t.match(await page.locator('.swagger-ui .info .title').textContent(), /crm-api/)
    t.ok(await page.locator('.topbar img[src^="data:image/svg+xml"]').count(), 'the crm-api logo replaces Swagger\'s')
    t.match(await page.locator('.swagger-ui .info .description').textContent(), /npm run token/, 'says how to get a token')
    const tags = await page.locator('.opblock-tag-section h3 .nostyle span').allTextContents()
    t.same(tags.slice(0, 3), ['customers', 'imports', 'orders'], `tags in domain order: ${tags.join(', ')}`)
    await page.locator('input.operation-filter-input').fill('segments')
    await page.locator('.opblock-tag-section').nth(1).waitFor({ state: 'detached' })
    t.same(await page.locator('.opblock-tag-section h3 .nostyle span').allTextContents(), ['segments'], 'the filter box narrows to a tag')
    await page.locator('input.operation-filter-input').fill('')
    await page.locator('.opblock-tag-section').nth(1).waitFor()
  })

  t.test('authorize, create a customer and find it in the list', async (t) => {
    await page.locator('.swagger-ui .auth-wrapper .btn.authorize').click()
    await page.locator('.modal-ux input[type="text"]').fill(bearer)
    await page.locator('.modal-ux button.modal-btn.auth.authorize').click()
    await page.locator('.modal-ux button.btn-done').click()
    t.ok(await page.locator('.swagger-ui .auth-wrapper .btn.authorize.locked').count(), 'shown as authorized')

    const created = await execute('createCustomer', async (block) => {
      await block.locator('textarea.body-param__text').fill(JSON.stringify({ name, contact_points: [{ kind: 'email', value: 'docs.browser@example.com' }] }))
    })
    t.equal(created.status, '201', `createCustomer answers 201: ${created.body.slice(0, 200)}`)
    t.match(created.body, name, 'the created customer is shown')

    const listed = await execute('listCustomers', async (block) => {
      await block.locator('tr[data-param-name="q"] input').fill(name)
    })
    t.equal(listed.status, '200', `listCustomers answers 200: ${listed.body.slice(0, 200)}`)
    t.match(listed.body, name, 'the list finds it')
    t.equal(await ctx.count('customers'), 1, 'the browser\'s request reached the database')
    // CRM_DOCS_SCREENSHOT=file.png keeps a picture of the page, to look at the branding.
    if (process.env.CRM_DOCS_SCREENSHOT) await page.locator('.swagger-ui .information-container').scrollIntoViewIfNeeded().then(() => page.screenshot({ path: process.env.CRM_DOCS_SCREENSHOT, fullPage: false }))
  })

  t.test('after a reload the authorization is still there', async (t) => {
    await page.reload()
    await page.locator('.swagger-ui .info .title').waitFor()
    t.ok(await page.locator('.swagger-ui .auth-wrapper .btn.authorize.locked').count(), 'still shown as authorized')
    const listed = await execute('listCustomers')
    t.equal(listed.status, '200', `no 401 after the reload: ${listed.body.slice(0, 200)}`)
    t.match(listed.body, name)
  })
}
