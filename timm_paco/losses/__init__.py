"""timm_paco.losses"""
