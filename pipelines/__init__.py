"""workspace-images: an inventory, with history, of Huawei Cloud Workspace product images, loaded by dlt."""
