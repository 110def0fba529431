//! The gRPC services between signaling nodes (cluster facts 2.1), generated
//! from `proto/grpc/*.proto`. The package is `grpc` as upstream's, so method
//! paths are `/grpc.<Service>/<Method>`.

#![allow(clippy::all, missing_docs)]

tonic::include_proto!("grpc");
