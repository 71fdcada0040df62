"""timm_paco.models"""
