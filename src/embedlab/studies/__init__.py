"""The source material's studies (OOV words, document similarity, distance concentration, model
size) as plain functions; ``experiments/<name>/`` scripts call them, ``viz.plots`` draws them."""
