"""gecodec's benchmarks. Run from a checkout: python -m bench.<script>."""
