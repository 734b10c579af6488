// The official client's rich-text rules as a judge (issue 17): for each line of standard input,
// a JSON string, one line of output: `{"graphemes": n, "facets": [...]}` as @atproto/api's
// RichText (pinned in package.json) detects them without resolving mentions, sorted by their
// start. Herald's own detection is held to this by tests/it/bluesky.rs.
import { createInterface } from 'node:readline'
import { RichText } from '@atproto/api'

const lines = createInterface({ input: process.stdin })
for await (const line of lines) {
  if (!line.trim()) continue
  const rt = new RichText({ text: JSON.parse(line) })
  rt.detectFacetsWithoutResolution()
  const facets = (rt.facets ?? [])
    .map((f) => ({ start: f.index.byteStart, end: f.index.byteEnd, feature: f.features[0] }))
    .sort((a, b) => a.start - b.start || a.end - b.end)
  process.stdout.write(JSON.stringify({ graphemes: rt.graphemeLength, bytes: rt.length, facets }) + '\n')
}
