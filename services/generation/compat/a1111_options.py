"""GET and POST /sdapi/v1/options (views/compat/a1111.py): A1111's settings, per caller.

A1111 keeps one settings file for the whole server; here each caller has their own view
of it, and changes nothing server-wide. GET answers A1111's standard options (the keys
of its modules/shared_options.py that clients read) with A1111's defaults, except where
Daydream's own value is known (PNG files, JPEG previews, no grids) and the two options
that mean something per caller and are kept:

* `sd_model_checkpoint`: the caller's default model for these APIs (users.api_model);
* `live_previews_enable`: the caller's live previews, the studio's setting (users.previews).

POST takes any of A1111's option keys (and unknown ones, as clients send whole settings
objects back) without complaint: the two above are kept, a bad value for them is a 422;
the rest is accepted and not stored (nothing here reads them), so GET answers their
defaults again."""
from __future__ import annotations

from extensions import db
from models import User
from services.core.errors import ValidationError
from services.generation import catalog
from services.generation.compat.common import model_title, set_user_default_model, short_hash, user_default_model

# A1111's defaults (v1.10 shared_options.py) for its standard options, less the server's
# paths, training, interrogation, the web UI's theme and system switches.
A1111_DEFAULTS: dict = {
    # saving images/grids
    "samples_save": True, "samples_format": "png", "samples_filename_pattern": "", "save_images_add_number": True,
    "save_images_replace_action": "Replace", "grid_save": True, "grid_format": "png", "grid_extended_filename": False,
    "grid_only_if_multiple": True, "grid_prevent_empty_spots": False, "grid_zip_filename_pattern": "", "n_rows": -1,
    "font": "", "grid_text_active_color": "#000000", "grid_text_inactive_color": "#999999",
    "grid_background_color": "#ffffff", "save_images_before_face_restoration": False,
    "save_images_before_highres_fix": False, "save_images_before_color_correction": False, "save_mask": False,
    "save_mask_composite": False, "jpeg_quality": 80, "webp_lossless": False, "export_for_4chan": True,
    "img_downscale_threshold": 4.0, "target_side_length": 4000, "img_max_size_mp": 200,
    "use_original_name_batch": True, "use_upscaler_name_as_suffix": False, "save_selected_only": True,
    "save_write_log_csv": True, "save_init_img": False, "enable_pnginfo": True, "save_txt": False,
    "save_incomplete_images": False,
    # saving to a directory
    "save_to_dirs": True, "grid_save_to_dirs": True, "use_save_to_dirs_for_ui": False,
    "directories_filename_pattern": "[date]", "directories_max_prompt_words": 8,
    # upscaling, face restoration
    "ESRGAN_tile": 192, "ESRGAN_tile_overlap": 8, "realesrgan_enabled_models": ["R-ESRGAN 4x+", "R-ESRGAN 4x+ Anime6B"],
    "dat_enabled_models": ["DAT x2", "DAT x3", "DAT x4"], "upscaler_for_img2img": None,
    "set_scale_by_when_changing_upscaler": False, "face_restoration": False, "face_restoration_model": "CodeFormer",
    "code_former_weight": 0.5, "face_restoration_unload": False,
    # Stable Diffusion
    "sd_model_checkpoint": None, "sd_checkpoints_limit": 1, "sd_checkpoints_keep_in_cpu": True,
    "sd_checkpoint_cache": 0, "sd_unet": "Automatic", "enable_quantization": False, "emphasis": "Original",
    "enable_batch_seeds": True, "comma_padding_backtrack": 20, "sdxl_clip_l_skip": False,
    "CLIP_stop_at_last_layers": 1, "upcast_attn": False, "randn_source": "GPU", "tiling": False,
    "hires_fix_refiner_pass": "second pass", "sd_checkpoint_hash": "",
    # SDXL
    "sdxl_crop_top": 0, "sdxl_crop_left": 0, "sdxl_refiner_low_aesthetic_score": 2.5,
    "sdxl_refiner_high_aesthetic_score": 6.0,
    # VAE
    "sd_vae_checkpoint_cache": 0, "sd_vae": "Automatic", "sd_vae_overrides_per_model_preferences": True,
    "auto_vae_precision_bfloat16": False, "auto_vae_precision": True, "sd_vae_encode_method": "Full",
    "sd_vae_decode_method": "Full",
    # img2img
    "inpainting_mask_weight": 1.0, "initial_noise_multiplier": 1.0, "img2img_extra_noise": 0.0,
    "img2img_color_correction": False, "img2img_fix_steps": False, "img2img_background_color": "#ffffff",
    "img2img_sketch_default_brush_color": "#ffffff", "img2img_inpaint_mask_brush_color": "#ffffff",
    "img2img_inpaint_sketch_default_brush_color": "#ffffff", "img2img_batch_show_results_limit": 32,
    "return_mask": False, "return_mask_composite": False, "overlay_inpaint": True,
    # optimizations
    "cross_attention_optimization": "Automatic", "s_min_uncond": 0.0, "s_min_uncond_all": False,
    "token_merging_ratio": 0.0, "token_merging_ratio_img2img": 0.0, "token_merging_ratio_hr": 0.0,
    "pad_cond_uncond": False, "pad_cond_uncond_v0": False, "persistent_cond_cache": True,
    "batch_cond_uncond": True, "fp8_storage": "Disable", "cache_fp16_weight": False,
    # compatibility
    "auto_backcompat": True, "use_old_emphasis_implementation": False, "use_old_karras_scheduler_sigmas": False,
    "no_dpmpp_sde_batch_determinism": False, "use_old_hires_fix_width_height": False,
    "hires_fix_use_firstpass_conds": False, "use_old_scheduling": False, "use_downcasted_alpha_bar": False,
    "refiner_switch_by_sample_steps": False,
    # extra networks
    "extra_networks_show_hidden_directories": True, "extra_networks_dir_button_function": False,
    "extra_networks_hidden_models": "When searched", "extra_networks_default_multiplier": 1.0,
    "extra_networks_card_width": 0, "extra_networks_card_height": 0, "extra_networks_card_text_scale": 1.0,
    "extra_networks_card_show_desc": True, "extra_networks_card_description_is_html": False,
    "extra_networks_card_order_field": "Path", "extra_networks_card_order": "Ascending",
    "extra_networks_tree_view_style": "Dirs", "extra_networks_tree_view_default_enabled": True,
    "extra_networks_tree_view_default_width": 180.0, "extra_networks_add_text_separator": " ",
    "ui_extra_networks_tab_reorder": "", "textual_inversion_print_at_load": False,
    "textual_inversion_add_hashes_to_infotext": True, "sd_hypernetwork": "None",
    "sd_lora": "None", "lora_preferred_name": "Alias from file", "lora_add_hashes_to_infotext": True,
    "lora_bundled_ti_to_infotext": True, "lora_show_all": False, "lora_hide_unknown_for_versions": [],
    "lora_in_memory_limit": 0, "lora_not_found_warning_console": False, "lora_not_found_gradio_warning": False,
    # user interface (what clients read of it)
    "return_grid": True, "do_not_show_images": False, "js_modal_lightbox": True,
    "js_modal_lightbox_initially_zoomed": True, "js_modal_lightbox_gamepad": False,
    "js_modal_lightbox_gamepad_repeat": 250, "sd_webui_modal_lightbox_icon_opacity": 1.0,
    "sd_webui_modal_lightbox_toolbar_opacity": 0.9, "gallery_height": "", "open_dir_button_choice": "Subdirectory",
    "send_seed": True, "send_size": True, "show_progress_in_title": True, "samplers_in_dropdown": True,
    "dimensions_and_batch_together": True, "sd_checkpoint_dropdown_use_short": False,
    "hires_fix_show_sampler": False, "hires_fix_show_prompts": False, "txt2img_settings_accordion": False,
    "img2img_settings_accordion": False, "interrupt_after_current": True, "localization": "None",
    "quicksettings_list": ["sd_model_checkpoint"], "ui_tab_order": [], "hidden_tabs": [], "ui_reorder_list": [],
    "disable_token_counters": False, "include_styles_into_token_counters": True,
    # infotext
    "add_model_hash_to_info": True, "add_model_name_to_info": True, "add_user_name_to_info": False,
    "add_version_to_infotext": True, "disable_weights_auto_swap": True, "infotext_skip_pasting": [],
    "infotext_styles": "Apply if any",
    # live previews
    "show_progressbar": True, "live_previews_enable": True, "live_previews_image_format": "png",
    "show_progress_grid": True, "show_progress_every_n_steps": 10, "show_progress_type": "Approx NN",
    "live_preview_allow_lowvram_full": False, "live_preview_content": "Prompt", "live_preview_refresh_period": 1000,
    "live_preview_fast_interrupt": False, "js_live_preview_in_modal_lightbox": False,
    "prevent_screen_sleep_during_generation": True,
    # sampler parameters
    "hide_samplers": [], "eta_ddim": 0.0, "eta_ancestral": 1.0, "ddim_discretize": "uniform", "s_churn": 0.0,
    "s_tmin": 0.0, "s_tmax": 0.0, "s_noise": 1.0, "sigma_min": 0.0, "sigma_max": 0.0, "rho": 0.0,
    "eta_noise_seed_delta": 0, "always_discard_next_to_last_sigma": False, "sgm_noise_multiplier": False,
    "uni_pc_variant": "bh1", "uni_pc_skip_type": "time_uniform", "uni_pc_order": 3,
    "uni_pc_lower_order_final": True, "sd_noise_schedule": "Default", "skip_early_cond": 0.0,
    "beta_dist_alpha": 0.6, "beta_dist_beta": 0.6,
    # postprocessing
    "postprocessing_enable_in_main_ui": [], "postprocessing_disable_in_extras": [],
    "postprocessing_operation_order": [], "upscaling_max_images_in_cache": 5,
    "postprocessing_existing_caption_action": "Ignore",
}

# What is so here, whatever the default: PNG files with their parameters, no grids, a JPEG
# preview at every step while a task runs, the model's own VAE and text encoder output.
DAYDREAM_VALUES = {
    "samples_format": "png", "grid_save": False, "return_grid": False, "enable_pnginfo": True,
    "live_previews_image_format": "jpeg", "show_progress_every_n_steps": 1, "show_progress_type": "Full",
    "sd_vae": "Automatic", "CLIP_stop_at_last_layers": 1,
}


def options_for(user: User) -> dict:
    """The caller's view of A1111's options."""
    row = catalog.row_of(user_default_model(user))
    return {**A1111_DEFAULTS, **DAYDREAM_VALUES,
            "sd_model_checkpoint": model_title(row) if row else None,
            "sd_checkpoint_hash": short_hash(row.id) if row else "",
            "live_previews_enable": bool(user.previews)}


def set_options(user: User, body: dict) -> None:
    """Keep what means something per caller; accept the rest unstored. Checked first,
    then kept, so a refused request changes nothing."""
    previews = body.get("live_previews_enable")
    if previews is not None and not isinstance(previews, bool):
        raise ValidationError("live_previews_enable", "must be true or false")
    if "sd_model_checkpoint" in body:
        set_user_default_model(user, body["sd_model_checkpoint"])  # (422 naming it when unknown)
    if previews is not None and previews != user.previews:
        user.previews = previews
        db.session.commit()
