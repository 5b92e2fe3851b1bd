"""The MultiModel: modalities (bottoms and tops), the shared body and its layers."""
