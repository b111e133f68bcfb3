"""The LRP core: models as graphs of named nodes, the layer functions, rules and stabilisers, composites,
canonization, and the engine that walks a model's graph backwards; plus the gradient-based attributors and the
conservation diagnostic. Nothing here reads files, trains or imports torch."""
