"""Plain nn.Module builders: model resolution, tiny test models, the sentence encoder."""
