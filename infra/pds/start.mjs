// Bluesky's reference PDS (@atproto/pds) with a PLC directory in memory (@did-plc/server's mock
// database), both on 127.0.0.1 only, for Herald's tests and `herald dev` (issue 17). Offline: the
// PDS reaches nothing but the local PLC (no AppView, no crawlers, no email). Facts this relies on:
// ../../docs/decisions.md, "Bluesky: the real PDS".
//
// Prints one JSON line once both answer: {"pds": "http://localhost:PORT", "listen": …, "plc": …,
// "admin_password": …}. With HERALD_PDS_PUBLIC_PORT the PDS names itself at that port (in DID
// documents, as its OAuth issuer) but listens on another (`listen`): the test kit puts a
// fault-injecting hop there, so a lost answer can be a real one. Stops on SIGTERM, SIGINT or when its standard input closes (the test
// kit holds it), removing its data directory. HERALD_PDS_RATE_LIMITS=1 turns the PDS's own rate
// limits on (in memory).
import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

import { PDS, envToCfg, envToSecrets } from '@atproto/pds'
import pdsPackage from '@atproto/pds/package.json' with { type: 'json' }
import { Database, PlcServer } from '@did-plc/server'

/** A free loopback port (bound, read, released). */
const freePort = () =>
  new Promise((resolve, reject) => {
    const probe = net.createServer()
    probe.once('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address()
      probe.close(() => resolve(port))
    })
  })

/** Both servers call `app.listen(port)` on every interface: loopback only, on `at` if given. */
const loopbackOnly = (app, at) => {
  const listen = app.listen.bind(app)
  app.listen = (port, ...rest) => listen(at ?? port, '127.0.0.1', ...rest.filter((arg) => typeof arg === 'function'))
}

const plcPort = await freePort()
const plc = PlcServer.create({ db: Database.mock(), port: plcPort })
loopbackOnly(plc.app)
await plc.start()

const listenPort = await freePort()
const port = process.env.HERALD_PDS_PUBLIC_PORT ? Number(process.env.HERALD_PDS_PUBLIC_PORT) : listenPort
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-pds-'))
const adminPassword = crypto.randomBytes(16).toString('hex')
// `localhost`, not 127.0.0.1: the PDS's safe fetch refuses IP-literal hosts.
const env = {
  version: pdsPackage.version,
  port,
  hostname: 'localhost',
  serviceHandleDomains: ['.test'],
  dataDirectory: dir,
  blobstoreDiskLocation: path.join(dir, 'blobs'),
  didPlcUrl: `http://localhost:${plcPort}`,
  jwtSecret: crypto.randomBytes(32).toString('hex'),
  adminPassword,
  plcRotationKeyK256PrivateKeyHex: crypto.randomBytes(32).toString('hex'),
  inviteRequired: false,
  devMode: true,
  crawlers: [],
  rateLimitsEnabled: process.env.HERALD_PDS_RATE_LIMITS === '1',
}
const pds = await PDS.create(envToCfg(env), envToSecrets(env))
loopbackOnly(pds.app, listenPort)
await pds.start()

let stopping = false
const stop = async () => {
  if (stopping) return
  stopping = true
  await pds.destroy().catch(() => {})
  await plc.destroy().catch(() => {})
  fs.rmSync(dir, { recursive: true, force: true })
  process.exit(0)
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
process.stdin.on('end', stop)
process.stdin.on('close', stop)
process.stdin.resume()

console.log(JSON.stringify({ pds: `http://localhost:${port}`, listen: `http://localhost:${listenPort}`, plc: `http://localhost:${plcPort}`, admin_password: adminPassword }))
