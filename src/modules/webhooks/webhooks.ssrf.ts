import { lookup as dnsLookup, type LookupAddress } from 'node:dns'
import { BlockList, isIP } from 'node:net'

/**
 * The SSRF guard of webhook targets. A webhook makes this server send requests to a URL a client
 * chose; without a guard that URL could be the metadata service (169.254.169.254), the database,
 * or anything else only reachable from inside. So:
 *
 * - at create and update, a URL whose host is, or resolves to, a private, loopback, link-local,
 *   shared, documentation, multicast or reserved address (IPv4 or IPv6, IPv4-mapped and NAT64
 *   addresses judged by the IPv4 address they carry) is refused, unless allow-listed;
 * - at delivery, the name is resolved again and the request connects to the address that was
 *   checked (the lookup hook of node:http below), so a name that resolved to a public address at
 *   create and to 127.0.0.1 now (DNS rebinding) is refused, and no second resolution can differ.
 *
 * The allow-list (WEBHOOK_ALLOWED_HOSTS) holds host names (exact, case-insensitive: their
 * addresses are not judged) and addresses or CIDR ranges (those addresses are allowed).
 */
const BLOCKED_V4 = [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.88.99.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24],
  ['203.0.113.0', 24], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const
const BLOCKED_V6 = [
  ['::', 128], ['::1', 128], ['100::', 64], ['2001::', 23], ['2001:db8::', 32], ['fc00::', 7], ['fe80::', 10], ['fec0::', 10], ['ff00::', 8],
] as const

const blocked = new BlockList()
for (const [net, prefix] of BLOCKED_V4) blocked.addSubnet(net, prefix, 'ipv4')
for (const [net, prefix] of BLOCKED_V6) blocked.addSubnet(net, prefix, 'ipv6')

export interface TargetPolicy {
  /** Host names let through whatever they resolve to (lower case). */
  hosts: ReadonlySet<string>
  /** Addresses let through although in a blocked range. */
  allowed: BlockList
}

/** WEBHOOK_ALLOWED_HOSTS ("hooks.internal,127.0.0.0/8,::1") as a policy. */
export function targetPolicy(allowList: string): TargetPolicy {
  const hosts = new Set<string>()
  const allowed = new BlockList()
  for (const raw of allowList.split(',').map((s) => s.trim()).filter(Boolean)) {
    const [address, prefix, ...rest] = raw.split('/') as [string, string | undefined, ...string[]]
    const family = isIP(address)
    const bad = () => new Error(`WEBHOOK_ALLOWED_HOSTS: ${raw} is neither a host name nor an address or CIDR range`)
    if (rest.length > 0 || (prefix !== undefined && (!/^\d{1,3}$/.test(prefix) || Number(prefix) > (family === 4 ? 32 : 128)))) throw bad()
    if (family === 0) {
      if (prefix !== undefined || !/^[A-Za-z0-9.-]+$/.test(address)) throw bad()
      hosts.add(address.toLowerCase())
    } else if (prefix === undefined) allowed.addAddress(address, family === 4 ? 'ipv4' : 'ipv6')
    else allowed.addSubnet(address, Number(prefix), family === 4 ? 'ipv4' : 'ipv6')
  }
  return { hosts, allowed }
}

export const NO_EXCEPTIONS: TargetPolicy = targetPolicy('')

/**
 * The IPv4 address an IPv6 address carries, when it is IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible
 * (::a.b.c.d, deprecated) or NAT64 (64:ff9b::a.b.c.d): such an address reaches that IPv4 host.
 */
export function embeddedIpv4(address: string): string | undefined {
  const groups = expandIpv6(address)
  if (!groups) return undefined
  const zero = (from: number, to: number) => groups.slice(from, to).every((g) => g === 0)
  const mapped = zero(0, 5) && groups[5] === 0xffff
  const compatible = zero(0, 6) && (groups[6]! !== 0 || groups[7]! > 1)
  const nat64 = groups[0] === 0x64 && groups[1] === 0xff9b && zero(2, 6)
  if (!mapped && !compatible && !nat64) return undefined
  return [groups[6]! >> 8, groups[6]! & 0xff, groups[7]! >> 8, groups[7]! & 0xff].join('.')
}

/** The eight 16-bit groups of an IPv6 address (with a dotted IPv4 tail or not); undefined if it is not one. */
function expandIpv6(address: string): number[] | undefined {
  if (isIP(address) !== 6) return undefined
  let text = address.replace(/%.*$/, '').toLowerCase()
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  if (v4) {
    const [a, b, c, d] = v4[1]!.split('.').map(Number) as [number, number, number, number]
    text = text.slice(0, -v4[1]!.length) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
  }
  const [head, tail] = text.split('::') as [string, string | undefined]
  const parse = (part: string) => (part ? part.split(':').map((g) => parseInt(g, 16)) : [])
  const left = parse(head)
  const right = tail === undefined ? [] : parse(tail)
  const fill = tail === undefined ? [] : new Array<number>(8 - left.length - right.length).fill(0)
  const groups = [...left, ...fill, ...right]
  return groups.length === 8 ? groups : undefined
}

/** Why this address may not be a webhook target, or undefined when it may. */
export function refusedAddress(address: string, policy: TargetPolicy): string | undefined {
  const family = isIP(address)
  if (family === 0) return `${address} is not an IP address`
  const type = family === 4 ? 'ipv4' : 'ipv6'
  if (policy.allowed.check(address, type)) return undefined
  const carried = family === 6 ? embeddedIpv4(address) : undefined
  if (carried !== undefined) {
    if (policy.allowed.check(carried, 'ipv4')) return undefined
    if (blocked.check(carried, 'ipv4')) return `${address} reaches the private or reserved address ${carried}`
    return undefined
  }
  if (blocked.check(address, type)) return `${address} is a private, loopback, link-local or reserved address`
  return undefined
}

/** The URL's host without IPv6 brackets. */
export const hostOf = (url: URL) => url.hostname.replace(/^\[(.*)\]$/, '$1')

const resolveAll = (host: string) =>
  new Promise<LookupAddress[]>((resolve, reject) => dnsLookup(host, { all: true, verbatim: true }, (err, addresses) => (err ? reject(err) : resolve(addresses))))

/**
 * Why this URL may not be a webhook target now, or undefined when it may: its scheme, its
 * credentials, and every address its host resolves to (one refused address refuses it: the
 * client would otherwise get whichever the resolver answers first). A host that does not resolve
 * passes: delivery checks again.
 */
export async function refusedTarget(raw: string, policy: TargetPolicy): Promise<string | undefined> {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    return 'is not an absolute URL'
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'must be an http or https URL'
  if (url.username || url.password) return 'must not carry credentials (the signature authenticates the sender)'
  const host = hostOf(url)
  if (policy.hosts.has(host.toLowerCase())) return undefined
  if (isIP(host)) return refusedAddress(host, policy)
  let addresses: LookupAddress[]
  try {
    addresses = await resolveAll(host)
  } catch {
    // A name that does not resolve now (not yet published, or no resolver here) is accepted:
    // the check that decides is the one at each delivery, on the address actually connected to.
    return undefined
  }
  for (const { address } of addresses) {
    const why = refusedAddress(address, policy)
    if (why) return `its host ${host} resolves to ${why.replace(/^\S+ /, `${address} which `)}`
  }
  return undefined
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void

/** An error of the guard at delivery time, recorded on the attempt as such. */
export class RefusedTargetError extends Error {
  code = 'ERR_WEBHOOK_TARGET_REFUSED'
}

/**
 * A lookup for node:http(s) requests (the `lookup` option) that resolves the host, refuses it
 * when any of its addresses is refused, and hands the socket the checked address: the connection
 * goes to exactly the address that was judged.
 */
export function guardedLookup(policy: TargetPolicy) {
  return (hostname: string, options: { all?: boolean; family?: number | string }, callback: LookupCallback): void => {
    const host = hostname.replace(/^\[(.*)\]$/, '$1')
    const allowedName = policy.hosts.has(host.toLowerCase())
    const judge = (addresses: LookupAddress[]) => {
      if (!allowedName) {
        for (const { address } of addresses) {
          const why = refusedAddress(address, policy)
          if (why) return callback(new RefusedTargetError(`webhook target refused: ${why}`), '')
        }
      }
      if (addresses.length === 0) return callback(Object.assign(new Error(`${host} has no address`), { code: 'ENOTFOUND' }), '')
      if (options.all) return callback(null, addresses)
      callback(null, addresses[0]!.address, addresses[0]!.family)
    }
    if (isIP(host)) return judge([{ address: host, family: isIP(host) }])
    resolveAll(host).then(judge, (err: NodeJS.ErrnoException) => callback(err, ''))
  }
}
