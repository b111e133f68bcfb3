"""Files in and out: checkpoints (Flax variables with their preprocessing), image files, preprocessing into model
inputs, heatmap rendering, and the background prefetcher that overlaps reading with compute."""
