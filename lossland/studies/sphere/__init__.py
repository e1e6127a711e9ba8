"""Study S (seed 003): training scale-invariant nets on the sphere happens in three regimes (docs/sphere.md).
The phase rule (:mod:`.phases`), the report's phase figures (:mod:`.plots`), the figures beyond the report
(:mod:`.figures`), fine-tuning and interpolation (:mod:`.finetune`, :mod:`.interpolation`, :mod:`.along_path`)."""
