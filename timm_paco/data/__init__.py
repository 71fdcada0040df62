"""timm_paco.data"""
