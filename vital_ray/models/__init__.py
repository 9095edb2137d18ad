"""Model kit: Qwen2.5-VL tokenizer, torchvision-free video processor, tiny offline model, mRoPE positions."""

from vital_ray.models.kit import ModelBundle, build_tiny_model_folder, ensure_model_folder, load_model_bundle

__all__ = ["ModelBundle", "build_tiny_model_folder", "ensure_model_folder", "load_model_bundle"]
