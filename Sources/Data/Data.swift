// The Data module: multi-domain datasets for federated learning.
//
// What training code and the daemons call:
//
//   DataSource(parsing: "digits5" | "digits5:TRAIN:TEST" | "/path/to/folder")
//       .load(domains:seed:shape:) -> [DomainData]        every domain's train and test split
//   PartitionSpec(parsing: "domain" | "domain:K" | "dirichlet:α" | "iid")
//   Partitioner.partition(domains, spec:, clientsPerDomain:, fraction:, seed:)
//       -> [ClientPartition]                             per client: domain and training indices
//   Partitioner.summary(clients, domains:)              a printable table
//   BatchIterator(dataset:indices:batchSize:shuffle:seed:normalization:)
//       .next(into: &batch)                              normalized N×C×H×W Float batches
//   ImageFile.decode(path:) -> DecodedImage             a JPEG or PNG file, H×W×C bytes
//   resizeAntialiased(_:width:height:)                  Pillow's antialiased bilinear resize
//   DecodedImage.planarRGB()                            3×H×W, the layout of Dataset.pixels
//
// Underneath: `Dataset` (bytes, N×C×H×W, plus labels), the `Digits5` generator,
// the readers `IDX`, `NumPy`, `CIFAR10` and `DatasetFolder`, the image decoders
// (`JPEG` through libjpeg-turbo, `PNGDecoder`, zlib for every inflate), `SampleGrid`/`PNG`
// for looking at data, seeded draws on `Tensor.SeededGenerator` (Random.swift) for
// reproducible randomness, and one error type, `DataError`. Nothing here knows about
// models or networking; of `Tensor` it uses only the generator.
