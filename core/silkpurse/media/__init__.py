"""Media facts shared by the extractor and the encoder: probing and colour."""
