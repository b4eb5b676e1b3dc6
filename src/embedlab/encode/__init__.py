"""Encoding: the Encoder object (reference | fast), its cache, sharded encoding, pooling sharing."""
