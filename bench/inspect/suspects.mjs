// bench/inspect suspects: label-noise suspects on cats-vs-dogs-large. For each seed, 5 % of the training labels are
// flipped at random; a logistic regression on MobileNetV2-int8 embeddings gives 5-fold out-of-fold probabilities for
// the noisy labels; and the top-k suspects, k = the number flipped, are scored against the flipped images, for
// confident learning (`LabelNoise.find`) and, in the same run, for the plain ranking by the out-of-fold probability of
// the given label. Every head setting tried is printed (l2, and whether mirror images train and predict too).
//   npx turbo run build --filter=@loupe/metrics --filter=@loupe/trainers && node bench/inspect/suspects.mjs [seeds]
import { Effect } from "effect"
import { Prng } from "@loupe/core"
import { LabelNoise } from "@loupe/metrics"
import { CrossValidation, LogisticRegression } from "@loupe/trainers"
import { loadEmbeddings } from "../lib/embeddings.mjs"

const seeds = Number(process.argv[2] ?? 5)
const RATE = 0.05
const settings = [{ l2: 1, mirror: false }, { l2: 1, mirror: true }, { l2: 10, mirror: false }, { l2: 10, mirror: true }, { l2: 100, mirror: true }]
const { x, y } = await loadEmbeddings("cats-vs-dogs-large", "train")
const mirrored = (await loadEmbeddings("cats-vs-dogs-large", "train", Infinity, { mirror: true })).x
const n = y.length
const k = Math.round(RATE * n)
const pct = (v) => `${(100 * v).toFixed(1)} %`
const mean = (values) => values.reduce((s, v) => s + v, 0) / values.length

const run = async ({ l2, mirror }, seed) => {
  const flipped = new Set(Prng.make(seed).shuffle(Array.from({ length: n }, (_, i) => i)).slice(0, k))
  const noisy = Int32Array.from(y, (label, i) => (flipped.has(i) ? 1 - label : label))
  const data = { x, y: noisy, numClasses: 2, ...(mirror ? { mirrored } : {}) }
  const { proba } = await Effect.runPromise(CrossValidation.crossValidate(LogisticRegression.plugin, { l2, maxIter: 500, tol: 1e-4 }, data, { folds: 5, seed }))
  const { suspects } = LabelNoise.find(noisy, proba)
  const plain = Array.from({ length: n }, (_, i) => i).sort((a, b) => proba.data[a * 2 + noisy[a]] - proba.data[b * 2 + noisy[b]] || a - b)
  const hits = (rows) => rows.filter((i) => flipped.has(i)).length
  const top = suspects.slice(0, k)
  return {
    flagged: suspects.length,
    // Top-k: precision over the suspects shown (fewer than k when fewer are flagged), recall over the k flipped.
    precision: hits(top.map((s) => s.index)) / top.length,
    recall: hits(top.map((s) => s.index)) / k,
    plain: hits(plain.slice(0, k)) / k,
    suggestedRight: suspects.filter((s) => flipped.has(s.index) && s.suggested === y[s.index]).length / Math.max(1, hits(suspects.map((s) => s.index)))
  }
}

console.log(`cats-vs-dogs-large train: ${n} images; per seed (0..${seeds - 1}) ${k} labels flipped (${pct(RATE)}); top-${k} suspects`)
console.log(`head                 | confident learning: precision  recall (mean, min)  flagged (min)  suggestion right | plain: recall (mean, min)`)
for (const setting of settings) {
  const r = []
  for (let seed = 0; seed < seeds; seed++) r.push(await run(setting, seed))
  console.log(
    `l2 ${String(setting.l2).padEnd(3)}${setting.mirror ? " + mirror" : "         "}      | ` +
      `${pct(mean(r.map((v) => v.precision)))}  ${pct(mean(r.map((v) => v.recall)))}, ${pct(Math.min(...r.map((v) => v.recall)))}  ` +
      `${Math.min(...r.map((v) => v.flagged))}  ${pct(mean(r.map((v) => v.suggestedRight)))} | ` +
      `${pct(mean(r.map((v) => v.plain)))}, ${pct(Math.min(...r.map((v) => v.plain)))}`
  )
}
