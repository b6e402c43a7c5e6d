"""Data stage: acquisition, MATLAB-exact bicubic resizing, cropping into the HDF5 patch store,
export of a patch store as paired PNG folders (or LMDB) and import of paired folders.

Modules (import what you need; nothing is imported here to keep start-up cheap):

* ``idc.data.images``     read_image / image_size / write_png / list_images (8-bit RGB policy)
* ``idc.data.imresize``   imresize / imresize_uint8 / modcrop (MATLAB ``imresize`` bicubic)
* ``idc.data.store``      PatchStoreWriter / PatchStore / write_patch_store (HDF5 schema)
* ``idc.data.indices``    load_indices (a selection: 1-D .npy of patch indices, checked)
* ``idc.data.crop``       crop_positions / count_patches / crop_images_to_store
* ``idc.data.download``   download / safe_extract / fetch_div2k / verify_div2k_dir
* ``idc.data.benchmarks`` prepare_testset (Set5, Set14, BSD100, Urban100, Manga109 layout)
* ``idc.data.demo``       build_demo_images (scikit-image photos, fixed train/test split)
* ``idc.data.paired``     export_paired / import_paired (BasicSR-style paired HR/LR folders + card)
* ``idc.data.lmdb_store`` write_lmdb / read_lmdb_pairs (the export's LMDB format)
* ``idc.data.train_options`` option_files (training option files of the exported set)
* ``idc.data.cli``        the ``python -m idc`` commands resize, crop, demo-images, fetch-div2k,
  prepare-testset, store-info, export, import-folder
"""
