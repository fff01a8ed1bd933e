"""The SQL models (staging/, marts/, macros/ and their TOML), read by `workspace_images.pipelines.model_files`."""
