"""Small assets and manifests of the environment suite (shipped as ``mapo_env.envs_data``)."""
