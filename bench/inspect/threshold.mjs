// bench/inspect threshold: chooses the near-duplicate threshold of `Duplicates` for the default backbone. Edited copies
// of shared photos (re-encoded, resized, cropped) are the pairs that must be found; every pair of distinct photos is
// one that must not. Prints precision and recall at each candidate threshold.
//   npx turbo run build --filter=@loupe/metrics && node bench/inspect/threshold.mjs
import * as fs from "node:fs"
import sharp from "sharp"
import { Duplicates } from "@loupe/metrics"
import { embedSources, listSplit, loadEmbeddings } from "../lib/embeddings.mjs"

const PER_LABEL = 100
// Each edit of a photo, as a user's copy of it would be made: saved again at low quality, shrunk, or cropped.
const edits = {
  "re-encoded (JPEG q 30)": (img) => img.jpeg({ quality: 30 }),
  "resized to half": (img, m) => img.resize(Math.round(m.width / 2)).jpeg({ quality: 85 }),
  "cropped to 90 %": (img, m) => img.extract(centre(m, 0.9)).jpeg({ quality: 85 }),
  "cropped to 75 %": (img, m) => img.extract(centre(m, 0.75)).jpeg({ quality: 85 }),
  "cropped to 90 %, half size, q 50": (img, m) => img.extract(centre(m, 0.9)).resize(Math.round(m.width * 0.45)).jpeg({ quality: 50 })
}
const centre = (m, f) => {
  const width = Math.round(m.width * f)
  const height = Math.round(m.height * f)
  return { left: Math.floor((m.width - width) / 2), top: Math.floor((m.height - height) / 2), width, height }
}

// Originals: test photos (not in the train split that supplies the distinct pairs' other half).
const test = listSplit("cats-vs-dogs-large", "test")
const originals = test.files.filter((_, i) => i % 250 < PER_LABEL)
const copies = []
for (const file of originals) {
  const meta = await sharp(file).metadata()
  for (const edit of Object.values(edits)) copies.push(await edit(sharp(fs.readFileSync(file)), meta).toBuffer())
}
const x = await embedSources([...originals, ...copies])
const train = await loadEmbeddings("cats-vs-dogs-large", "train")
const d = x.cols
const unit = (data, i) => {
  const v = data.subarray(i * d, (i + 1) * d)
  const norm = Math.sqrt(v.reduce((s, a) => s + a * a, 0))
  return v.map((a) => a / norm)
}
const dot = (a, b) => a.reduce((s, v, t) => s + v * b[t], 0)
const editNames = Object.keys(edits)
const positives = originals.flatMap((_, o) =>
  editNames.map((name, e) => ({ name, similarity: dot(unit(x.data, o), unit(x.data, originals.length + o * editNames.length + e)) }))
)
// Distinct photos: every pair among the train photos and the originals.
const distinct = [...Array.from({ length: train.x.rows }, (_, i) => unit(train.x.data, i)), ...originals.map((_, o) => unit(x.data, o))]
const negatives = []
for (let i = 0; i < distinct.length; i++) for (let j = i + 1; j < distinct.length; j++) negatives.push(dot(distinct[i], distinct[j]))
negatives.sort((a, b) => b - a)

console.log(`${originals.length} originals x ${editNames.length} edits = ${positives.length} copies; ${negatives.length} distinct pairs`)
console.log(`lowest copy similarity per edit:`)
for (const name of editNames) {
  const s = positives.filter((p) => p.name === name).map((p) => p.similarity).sort((a, b) => a - b)
  console.log(`  ${name}: min ${s[0].toFixed(3)}, median ${s[s.length >> 1].toFixed(3)}`)
}
console.log(`highest distinct-pair similarities: ${negatives.slice(0, 5).map((s) => s.toFixed(3)).join(", ")}`)
console.log(`threshold  recall (copies found)  false pairs  precision`)
for (const t of [0.85, 0.86, 0.87, 0.88, 0.89, 0.9, 0.91, 0.92, 0.93, Duplicates.defaultThreshold].filter((v, i, a) => a.indexOf(v) === i).sort()) {
  const tp = positives.filter((p) => p.similarity >= t).length
  const fp = negatives.filter((s) => s >= t).length
  console.log(`${t.toFixed(2)}${t === Duplicates.defaultThreshold ? " (default)" : ""}  ${tp}/${positives.length} (${(100 * tp / positives.length).toFixed(1)} %)  ${fp}  ${(100 * tp / (tp + fp)).toFixed(2)} %`)
}
