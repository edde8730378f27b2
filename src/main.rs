use kube::CustomResourceExt;
fn main() {
    print!("{}", serde_yaml::to_string(&mas_reset_operator::api::BulkPasswordReset::crd()).unwrap());
}
