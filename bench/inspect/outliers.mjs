// bench/inspect outliers: how often `Outliers.find` flags a photo of another kind filed among cats and dogs, and how
// often it flags the cats and dogs themselves. Each trial draws n cats and n dogs from cats-vs-dogs-large's train
// photos and one flower (daisy, dandelion, rose, sunflower or tulip, flowers-5 train), filed under cats, dogs or no
// label in turn, on cached MobileNetV2-int8 embeddings.
//   npx turbo run build --filter=@loupe/metrics && node bench/inspect/outliers.mjs [trials]
import { Matrix, Prng } from "@loupe/core"
import { Outliers } from "@loupe/metrics"
import { loadEmbeddings } from "../lib/embeddings.mjs"

const trials = Number(process.argv[2] ?? 200)
const photos = await loadEmbeddings("cats-vs-dogs-large", "train", 300)
const flowers = await loadEmbeddings("flowers-5", "train", 30)
const byLabel = [0, 1].map((c) => [...photos.y.keys()].filter((i) => photos.y[i] === c))
const row = (m, i) => Matrix.row(m, i)
const cutoffs = [2.5, 3, 3.5, 4, 5]

console.log(`${trials} trials per size; cutoff: flower flagged (detection) | cats and dogs flagged (false positives)`)
for (const n of [12, 30, 100]) {
  const prng = Prng.make(n)
  const flagged = cutoffs.map(() => ({ flower: 0, normal: 0 }))
  for (let t = 0; t < trials; t++) {
    const drawn = byLabel.flatMap((rows) => prng.shuffle([...rows]).slice(0, n))
    const flower = prng.int(flowers.x.rows)
    const x = Matrix.fromRows([...drawn.map((i) => row(photos.x, i)), row(flowers.x, flower)])
    const y = Int32Array.from([...drawn.map((i) => photos.y[i]), t % 3 === 2 ? -1 : t % 2])
    cutoffs.forEach((cutoff, k) => {
      const found = Outliers.find(x, y, 2, { cutoff }).map((o) => o.index)
      if (found.includes(2 * n)) flagged[k].flower++
      flagged[k].normal += found.filter((i) => i !== 2 * n).length
    })
  }
  const cells = cutoffs.map((cutoff, k) =>
    `${cutoff}${cutoff === 3.5 ? " (default)" : ""}: ${(100 * flagged[k].flower / trials).toFixed(1)} % | ${(100 * flagged[k].normal / (trials * 2 * n)).toFixed(2)} %`
  )
  console.log(`${String(n).padStart(3)} + ${n}: ${cells.join("   ")}`)
}
