/**
 * The built-in plugins: every catalog backbone, the search heads, and the heads manual training, fine-tuning and
 * ensembles produce, so that their bundles load. The CLI registers them (with user plugins), and so does the Docker
 * image's server entry, which serves exactly these.
 *
 * @since 0.1.0
 */
import type { Registry } from "@loupe/core"
import { Catalog } from "@loupe/backbones"
import { Heads, ManualTraining, MultiBackbone, OneVsRest } from "@loupe/trainers"

/**
 * The built-in backbones (every catalog entry, and `Catalog.resolveBackbone` for any other hub repository
 * `hf:org/name[@revision]` or model folder) and heads (search, zero-shot, manual training, fine-tuning, ensemble and tags
 * heads), ready for `Registry.make`; `Plugins.registryLayer` starts from these.
 *
 * @since 0.1.0
 * @category plugins
 */
export const builtins: Registry.Plugins = {
  backbones: Catalog.builtins,
  resolveBackbone: Catalog.resolveBackbone,
  heads: [...Heads.heads, ...Heads.zeroShotHeads, ...ManualTraining.heads, ...MultiBackbone.heads, OneVsRest.plugin]
}
