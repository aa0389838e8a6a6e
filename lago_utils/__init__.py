"""What the LaGO scripts share and is not the algorithm: LLM loading, the checkpoint format, fast frozen inference, the device."""
