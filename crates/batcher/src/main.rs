//! The `batcher` Lambda function: the shared start (logs, configuration, SDK settings), the
//! handler wired to the AWS adapters, then the runtime.

#[tokio::main]
async fn main() -> Result<(), restart_lambda::Error> {
    let (config, sdk) = restart_lambda::start().await?;
    let handler = batcher::aws::handler(config, &sdk);
    restart_lambda::serve(|event| handler.handle(event)).await
}
