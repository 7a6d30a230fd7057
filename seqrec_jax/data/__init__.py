"""Data: raw readers -> preprocessing -> SequenceDataset -> Grain pipelines."""
